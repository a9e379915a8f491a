// The bench measures a system only after one sample request came back right: a fast wrong answer (an error page, a
// login redirect, a truncated body) must stop the measurement instead of being reported as a fast system.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import https from 'node:https';
import os from 'node:os';
import path from 'node:path';
import type { AddressInfo } from 'node:net';
import { checkSample } from '../../bench/lib/check.ts';
import { SMALL_BODY, writeCertificates } from '../../bench/lib/configs.ts';
import { loadScenarios } from '../../bench/run.ts';

test('bench sample check: only 200 with the upstream exact body passes', async (t) => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'bench-check-'));
  t.after(() => fs.rmSync(dir, { recursive: true, force: true }));
  await writeCertificates(path.join(dir, 'certs'), ['localhost']);
  let answer: { status: number; body: Buffer } = { status: 200, body: Buffer.from(SMALL_BODY) };
  const seen: (string | undefined)[] = [];
  const server = https.createServer(
    {
      cert: fs.readFileSync(path.join(dir, 'certs', 'localhost.crt')),
      key: fs.readFileSync(path.join(dir, 'certs', 'localhost.key')),
    },
    (req, res) => {
      seen.push(req.headers.cookie);
      res.writeHead(answer.status, { 'content-length': answer.body.length }).end(answer.body);
    },
  );
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  t.after(() => server.close());
  const target = {
    system: 'nginx' as const,
    port: (server.address() as AddressInfo).port,
    names: ['localhost'],
    dir,
    systemDir: dir,
  };
  const [small, big] = await loadScenarios(['h1-keepalive', 'stream-1mb']);

  await checkSample(small!, target, { cookie: 'a=b' });
  assert.deepEqual(seen, ['a=b'], 'the load headers go with the sample request');

  answer = { status: 200, body: Buffer.from('an error page') };
  await assert.rejects(
    checkSample(small!, target, {}),
    /got 200 with 13 bytes .*want 200 with the upstream's 100 bytes/,
  );
  answer = { status: 302, body: Buffer.from(SMALL_BODY) };
  await assert.rejects(checkSample(small!, target, {}), /got 302/);
  answer = { status: 200, body: Buffer.alloc(1024 * 1024 - 1, 'x') };
  await assert.rejects(checkSample(big!, target, {}), /got 200 with 1048575 bytes/);
  answer = { status: 200, body: Buffer.alloc(1024 * 1024, 'x') };
  await checkSample(big!, target, {});
});

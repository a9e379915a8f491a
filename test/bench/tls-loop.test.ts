// The bench's handshake load (clients/tls-loop.ts) must make every system do the same key exchange: it offers the
// groups wrk's OpenSSL 3.0 offers and nginx 1.22 / Caddy 2.6 support. Node 24's default would put the post-quantum
// hybrid X25519MLKEM768 first, which only the Node systems accept, and they would be measured doing more work.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import fs from 'node:fs';
import https from 'node:https';
import os from 'node:os';
import path from 'node:path';
import type { AddressInfo } from 'node:net';
import { writeCertificates } from '../../bench/lib/configs.ts';

const CLIENT = path.resolve(import.meta.dirname, '../../bench/clients/tls-loop.ts');

async function loopAgainst(ecdhCurve: string): Promise<{ requests: number; errors: number }> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'bench-tls-loop-'));
  try {
    await writeCertificates(dir, ['localhost']);
    const server = https.createServer(
      {
        cert: fs.readFileSync(path.join(dir, 'localhost.crt')),
        key: fs.readFileSync(path.join(dir, 'localhost.key')),
        ecdhCurve,
      },
      (_req, res) => res.end('ok'),
    );
    server.on('tlsClientError', () => {});
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    try {
      const options = {
        port: (server.address() as AddressInfo).port,
        names: ['localhost'],
        path: '/',
        connections: 1,
        resume: false,
        seconds: 1,
        headers: {},
      };
      const out = await new Promise<string>((resolve, reject) =>
        execFile(process.execPath, [CLIENT, JSON.stringify(options)], { timeout: 30_000 }, (error, stdout) =>
          error ? reject(error) : resolve(stdout),
        ),
      );
      return JSON.parse(out) as { requests: number; errors: number };
    } finally {
      server.close();
    }
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

test('tls-loop offers X25519 (what every benched system negotiates), not the post-quantum hybrid', async () => {
  const classic = await loopAgainst('X25519');
  assert.ok(classic.requests > 0, `X25519: ${JSON.stringify(classic)}`);
  assert.equal(classic.errors, 0);
  // A server that accepts only X25519MLKEM768 finds no common group: no handshake completes.
  const hybridOnly = await loopAgainst('X25519MLKEM768');
  assert.equal(hybridOnly.requests, 0, `X25519MLKEM768 only: ${JSON.stringify(hybridOnly)}`);
  assert.ok(hybridOnly.errors > 0);
});

// `gatehouse demo --upstream URL` refuses what it cannot proxy before it starts anything, and `--print-config` says
// when there is nothing to print. (The demo in front of a real Express app: test/docs/readme-commands.test.ts.)
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { test } from 'node:test';

const MAIN = path.resolve(import.meta.dirname, '../../src/main.ts');

function gatehouse(args: string[], cwd = fs.mkdtempSync(path.join(os.tmpdir(), 'gatehouse-demo-cli-'))) {
  const run = spawnSync(process.execPath, [MAIN, ...args], { cwd, encoding: 'utf8', timeout: 120_000 });
  fs.rmSync(cwd, { recursive: true, force: true });
  return run;
}

test('demo --upstream: anything but an http(s) origin ends with exit 2 and the reason, and nothing is written', () => {
  for (const [url, reason] of [
    ['ftp://127.0.0.1:21', /only http:\/\/ and https:\/\/ applications can be proxied/],
    ['file:///etc/passwd', /only http:\/\/ and https:\/\/ applications can be proxied/],
    ['127.0.0.1:3000', /not a URL/],
    ['localhost', /not a URL/],
    ['http://127.0.0.1:3000/app', /give the origin only/],
    ['http://user:pw@127.0.0.1:3000', /credentials in the URL are not supported/],
  ] as const) {
    const cwd = fs.mkdtempSync(path.join(os.tmpdir(), 'gatehouse-demo-cli-'));
    const run = spawnSync(process.execPath, [MAIN, 'demo', '--upstream', url, '--port', '0'], {
      cwd,
      encoding: 'utf8',
      timeout: 120_000,
    });
    const written = fs.readdirSync(cwd);
    fs.rmSync(cwd, { recursive: true, force: true });
    assert.equal(run.status, 2, `${url}: ${run.stderr}`);
    assert.match(run.stderr, new RegExp(`--upstream ${url.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&')}: `));
    assert.match(run.stderr, reason, url);
    assert.deepEqual(written, [], `${url}: nothing written`);
  }
});

test('demo --print-config before any demo ran: exit 2, saying what to run; with --upstream: a usage error', () => {
  const none = gatehouse(['demo', '--print-config']);
  assert.equal(none.status, 2);
  assert.equal(none.stdout, '');
  assert.match(none.stderr, /no demo configuration in certs\/demo: run `gatehouse demo`/);
  const both = gatehouse(['demo', '--print-config', '--upstream', 'http://127.0.0.1:3000']);
  assert.equal(both.status, 64);
  const elsewhere = gatehouse(['serve', '--upstream', 'http://127.0.0.1:3000']);
  assert.equal(elsewhere.status, 64);
  assert.match(elsewhere.stderr, /--upstream is an option of demo only/);
});

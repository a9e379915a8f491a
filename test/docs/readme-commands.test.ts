// The README's commands, run exactly as written. The Quick start's first line on a fresh copy of the repository
// (npm install && npm start, then the README's curl line, then Ctrl-C); its second line is what CI runs (.ci/run).
// The single executable's lines run in test/binary/sea.test.ts (./dist/gatehouse from the checkout, env -i).
import assert from 'node:assert/strict';
import { execFileSync, spawn, spawnSync } from 'node:child_process';
import { once } from 'node:events';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { createInterface } from 'node:readline';
import { test } from 'node:test';
import { until } from '../harness/wait.ts';

const ROOT = path.resolve(import.meta.dirname, '../..');
const README = fs.readFileSync(path.join(ROOT, 'README.md'), 'utf8');
const QUICK_START =
  /## Quick start\n\n```sh\n([^]*?)```/
    .exec(README)?.[1]
    ?.split('\n')
    .filter(Boolean)
    .map((line) => line.replace(/\s+#.*$/, '')) ?? [];

test('the Quick start has two commands: the demo, and the one CI runs', () => {
  assert.deepEqual(QUICK_START, ['npm install && npm start', 'npm ci && npm run setup && npm test']);
  const ci = fs
    .readFileSync(path.join(ROOT, '.ci', 'run'), 'utf8')
    .trim()
    .split('\n')
    .at(-1);
  assert.equal(ci, QUICK_START[1], ".ci/run ends with the README's test command");
});

test(
  'README: `npm install && npm start` on a fresh copy serves the demo; its curl line answers; Ctrl-C stops it',
  { timeout: 600_000 },
  async (t) => {
    // A fresh copy of what is committed, so npm install runs as on a new machine (from npm's cache) without touching
    // the node_modules the other test files use.
    const copy = fs.mkdtempSync(path.join(os.tmpdir(), 'gatehouse-readme-'));
    t.after(() => fs.rmSync(copy, { recursive: true, force: true }));
    execFileSync('git', ['clone', '--quiet', '--no-hardlinks', ROOT, copy]);
    const demo = spawn('sh', ['-c', QUICK_START[0]!], { cwd: copy, stdio: ['ignore', 'pipe', 'pipe'], detached: true });
    t.after(() => {
      try {
        process.kill(-demo.pid!, 'SIGKILL');
      } catch {
        /* the group has ended */
      }
    });
    const lines: string[] = [];
    for (const stream of [demo.stdout!, demo.stderr!])
      createInterface({ input: stream }).on('line', (line) => lines.push(line));
    await until(
      () => lines.some((line) => line.includes('demo ready: open https://localhost:8443/')) || demo.exitCode !== null,
      () => `the demo to be ready:\n${lines.join('\n')}`,
      300_000,
    );
    assert.equal(demo.exitCode, null, lines.join('\n'));

    const curlLine = /`(curl -k https:\/\/localhost:8443\/public\/)`/.exec(README)?.[1];
    assert.ok(curlLine, 'the README shows the curl line for /public/');
    const curl = spawnSync('sh', ['-c', curlLine], { encoding: 'utf8', timeout: 60_000 });
    assert.equal(curl.status, 0, curl.stderr);
    const echoed = JSON.parse(curl.stdout) as { headers: Record<string, string> };
    assert.equal(echoed.headers['x-forwarded-proto'], 'https', 'the echo backend answered through Gatehouse');

    // Ctrl-C: the terminal sends SIGINT to the whole foreground process group (sh, npm and the demo); the demo stops
    // gracefully (sh and npm themselves end by the signal, as in a terminal).
    process.kill(-demo.pid!, 'SIGINT');
    await once(demo, 'close');
    assert.ok(
      lines.some((line) => /"msg":"stopped"|\bstopped\b/.test(line)),
      `the demo stopped gracefully:\n${lines.join('\n')}`,
    );
  },
);

test('README: `npm run gatehouse -- check --config config` checks the example and names what it still needs', () => {
  const line = /`(npm run gatehouse -- check --config config)`/.exec(README)?.[1];
  assert.ok(line, 'the README shows the check command');
  // The example takes its secrets from the environment, as a deployment would: without them, every missing one is
  // listed with file, line and key, and check exits 2.
  const run = spawnSync('sh', ['-c', line], {
    cwd: ROOT,
    encoding: 'utf8',
    timeout: 120_000,
    env: { PATH: process.env.PATH!, HOME: os.homedir() },
  });
  assert.equal(run.status, 2, run.stdout + run.stderr);
  assert.match(
    run.stderr,
    /code\.refol\.us\.toml:\d+: auth\.client_id: environment variable CODE_CLIENT_ID is not set/,
  );
});

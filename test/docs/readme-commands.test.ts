// The README's commands, run exactly as written. The Quick start's first line on a fresh copy of the repository
// (npm install && npm start, then the README's curl line, then Ctrl-C); its second line is what CI runs (.ci/run).
// The single executable's lines run in test/binary/sea.test.ts (./dist/gatehouse from the checkout, env -i).
import assert from 'node:assert/strict';
import { execFileSync, spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import fs from 'node:fs';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import { createInterface } from 'node:readline';
import { test } from 'node:test';
import express from 'express';
import { Browser } from '../harness/gatehouse-auth.ts';
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
    const { demo, lines } = await startDemo(t, QUICK_START[0]!, copy, 300_000);

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

const OWN_APP =
  /### Your own application behind the demo login\n\n```sh\n([^]*?)```/
    .exec(README)?.[1]
    ?.split('\n')
    .filter(Boolean)
    .map((line) => line.replace(/\s+#.*$/, '')) ?? [];

test(
  'README: the demo in front of your own app (Express): bob logs in and the app sees him; --print-config prints what `check` accepts',
  { timeout: 300_000 },
  async (t) => {
    assert.equal(OWN_APP.length, 3, 'the README shows three commands for your own application');
    const [demoLine, printLine, checkLine] = OWN_APP as [string, string, string];
    assert.match(demoLine, /demo --upstream /);
    assert.match(printLine, /demo --print-config$/);
    assert.match(checkLine, /check --config certs\/demo$/);
    const upstream = new URL(/--upstream (\S+)/.exec(demoLine)![1]!);

    // The user's application: a real Express 5 app on the address the README names, answering with what it received.
    const app = express();
    app.get('/whoami', (req, res) => void res.json({ headers: req.headers }));
    const server = await new Promise<http.Server>((resolve, reject) => {
      const s = app.listen(Number(upstream.port), upstream.hostname, (error?: Error) =>
        error
          ? reject(new Error(`cannot listen where the README's app is (${upstream.host}): ${error.message}`))
          : resolve(s),
      );
    });
    t.after(() => {
      server.closeAllConnections();
      server.close();
    });

    const { demo, lines } = await startDemo(t, demoLine, ROOT, 120_000);
    assert.ok(lines.some((line) => line.includes(`your application ${upstream.origin} gets the identity headers`)));

    const browser = new Browser(fs.readFileSync(path.join(ROOT, 'certs/demo/localhost.crt'), 'utf8'));
    const first = await browser.request('https://localhost:8443/whoami');
    assert.equal(first.status, 302, 'every page of the app asks for a login');
    const page = await browser.navigate(first.headers.location!, 'bob', { stopAt: (u) => u.pathname === '/whoami' });
    assert.equal(page.status, 200, page.body);
    const seen = page.json<{ headers: Record<string, string> }>().headers;
    assert.equal(seen['x-auth-request-user'], 'bob@demo.test');
    assert.equal(seen['x-auth-request-groups'], 'staff');
    assert.equal(seen['x-forwarded-proto'], 'https');

    const printed = spawnSync('sh', ['-c', printLine], { cwd: ROOT, encoding: 'utf8', timeout: 120_000 });
    assert.equal(printed.status, 0, printed.stderr);
    const files = ['certs/demo/gatehouse.toml', 'certs/demo/sites/localhost.toml'];
    assert.equal(
      printed.stdout,
      files.map((file) => `# ==> ${file} <==\n${fs.readFileSync(path.join(ROOT, file), 'utf8')}`).join('\n'),
      'both files, each under its name',
    );
    assert.match(printed.stdout, new RegExp(`upstream = "${upstream.origin}"`));
    // The printed files, put into a folder of their own (with the certificate they name), are a valid configuration.
    const own = fs.mkdtempSync(path.join(os.tmpdir(), 'gatehouse-own-'));
    t.after(() => fs.rmSync(own, { recursive: true, force: true }));
    const parts = printed.stdout.split(/^# ==> certs\/demo\/(\S+) <==\n/m).slice(1);
    for (let i = 0; i < parts.length; i += 2) {
      fs.mkdirSync(path.dirname(path.join(own, parts[i]!)), { recursive: true });
      fs.writeFileSync(path.join(own, parts[i]!), parts[i + 1]!);
    }
    for (const file of ['localhost.crt', 'localhost.key'])
      fs.copyFileSync(path.join(ROOT, 'certs/demo', file), path.join(own, file));
    const ownCheck = spawnSync(process.execPath, [path.join(ROOT, 'src/main.ts'), 'check', '--config', own], {
      encoding: 'utf8',
      timeout: 120_000,
    });
    assert.equal(ownCheck.status, 0, ownCheck.stderr);

    const checked = spawnSync('sh', ['-c', checkLine], { cwd: ROOT, encoding: 'utf8', timeout: 120_000 });
    assert.equal(checked.status, 0, checked.stdout + checked.stderr);
    assert.match(checked.stdout, /configuration is valid \(1 site: localhost\)/);

    process.kill(-demo.pid!, 'SIGINT');
    await once(demo, 'close');
  },
);

/** Runs a README demo command in its own process group (ended with the test) until it says it is ready. */
async function startDemo(
  t: { after(fn: () => void): void },
  command: string,
  cwd: string,
  waitMs: number,
): Promise<{ demo: ChildProcess; lines: string[] }> {
  const demo = spawn('sh', ['-c', command], { cwd, stdio: ['ignore', 'pipe', 'pipe'], detached: true });
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
    waitMs,
  );
  assert.equal(demo.exitCode, null, lines.join('\n'));
  return { demo, lines };
}

// `gatehouse serve` loads only what its configuration uses: a process that serves public sites carries no login
// (openid-client, jose), no ACME, no demo identity provider, no Prometheus client, no pretty-printer, no static-file
// server and no WebSocket proxy until something needs them. V8 never unloads a module, so what a process loaded once
// it keeps for good (memory). Recorded with Node's module hooks in a real `serve` process.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { createInterface } from 'node:readline';
import { createSelfSigned } from '../../src/tls/self-signed.ts';
import { MAIN } from '../harness/spawn-gatehouse.ts';
import { until } from '../harness/wait.ts';

const RECORDER = path.resolve(import.meta.dirname, '../fixtures/record-packages.ts');

/** Loaded only by a configuration (or a request) that needs them. (lru-cache is not among them: it is small, and
 *  rate limiting keeps its buckets in one.) */
const ON_DEMAND = [
  'openid-client',
  'oauth4webapi',
  'jose',
  'ioredis',
  'acme-client',
  '@peculiar/x509',
  'oidc-provider',
  'prom-client',
  'pino-pretty',
  'send',
  'http-proxy-3',
  'ws',
];

async function configFolder(t: { after(fn: () => void): void }, extra: { global?: string; site?: string } = {}) {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'gatehouse-loads-'));
  t.after(() => fs.rmSync(dir, { recursive: true, force: true }));
  const pair = await createSelfSigned(['a.test']);
  fs.mkdirSync(path.join(dir, 'sites'));
  fs.writeFileSync(path.join(dir, 'a.test.crt'), pair.certPem);
  fs.writeFileSync(path.join(dir, 'a.test.key'), pair.keyPem, { mode: 0o600 });
  fs.writeFileSync(
    path.join(dir, 'gatehouse.toml'),
    `workers = 1\n${extra.global ?? ''}\n[https]\nlisten = ["127.0.0.1:0"]\n\n[http]\nlisten = ["127.0.0.1:0"]\n`,
  );
  fs.writeFileSync(
    path.join(dir, 'sites', 'a.test.toml'),
    `server_names = ["a.test"]\n\n[tls]\ncert = "a.test.crt"\nkey = "a.test.key"\n\n` +
      `[[routes]]\npath = "/files/"\nroot = "${dir}"\n\n[[routes]]\npath = "/"\nupstream = "http://127.0.0.1:9"\n` +
      (extra.site ?? ''),
  );
  return dir;
}

interface Loaded {
  worker: boolean;
  packages: Set<string>;
}

/** Runs `gatehouse serve` until `listening` processes listen, stops it with SIGTERM, and returns what each process
 *  loaded (a single process, or the primary and its workers). */
async function packagesLoadedBy(dir: string, listening = 1): Promise<Loaded[]> {
  const reports = fs.mkdtempSync(path.join(dir, 'loaded-'));
  const child = spawn(process.execPath, [`--import=${RECORDER}`, MAIN, 'serve', '--config', dir], {
    env: { ...process.env, LOADED_PACKAGES: reports },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const lines: string[] = [];
  for (const stream of [child.stdout, child.stderr])
    createInterface({ input: stream }).on('line', (line) => lines.push(line));
  try {
    await until(
      () => lines.filter((line) => /listening/.test(line)).length >= listening || child.exitCode !== null,
      () => `${listening} "listening" line(s)\n${lines.join('\n')}`,
    );
    assert.equal(child.exitCode, null, lines.join('\n'));
  } finally {
    if (child.exitCode === null) child.kill('SIGTERM');
    if (child.exitCode === null) await once(child, 'exit');
  }
  const files = fs.readdirSync(reports);
  assert.equal(files.length, listening === 1 ? 1 : listening + 1, `one report per process: ${files.join(', ')}`);
  return files.map((file) => {
    const { worker, packages } = JSON.parse(fs.readFileSync(path.join(reports, file), 'utf8')) as {
      worker: boolean;
      packages: string[];
    };
    return { worker, packages: new Set(packages) };
  });
}

test('serve with public sites only loads none of the login, ACME, demo, metrics, pretty-log, static-file or WebSocket libraries', async (t) => {
  const loaded = (await packagesLoadedBy(await configFolder(t)))[0]!.packages;
  assert.ok(loaded.has('pino'), `the recorder sees what serve loads: ${[...loaded].join(', ')}`);
  assert.deepEqual(
    ON_DEMAND.filter((name) => loaded.has(name)),
    [],
    `loaded: ${[...loaded].join(', ')}`,
  );
});

test('serve loads the login, the Prometheus client and the pretty-printer when the configuration uses them', async (t) => {
  const dir = await configFolder(t, {
    global: '\n[log]\nformat = "pretty"\n\n[metrics]\nlisten = "127.0.0.1:0"\n\n[session]\nstore = "memory"\n',
    site: [
      '\n[auth]',
      'provider = "oidc"',
      // Nothing answers there: discovery retries in the background and serve listens all the same.
      'oidc_issuer_url = "http://127.0.0.1:9/"',
      'client_id = "gatehouse"',
      'client_secret = "secret"',
      `cookie_secret = "${Buffer.alloc(32, 7).toString('base64')}"`,
      'email_domains = ["*"]',
      '',
    ].join('\n'),
  });
  const loaded = (await packagesLoadedBy(dir))[0]!.packages;
  for (const name of ['openid-client', 'jose', 'prom-client', 'pino-pretty'])
    assert.ok(loaded.has(name), `${name} is loaded: ${[...loaded].join(', ')}`);
});

test('workers = 2: the cluster primary loads none of the request path, its workers none of what the config does not use', async (t) => {
  const dir = await configFolder(t);
  const toml = path.join(dir, 'gatehouse.toml');
  fs.writeFileSync(toml, fs.readFileSync(toml, 'utf8').replace('workers = 1', 'workers = 2'));
  const processes = await packagesLoadedBy(dir, 2);
  const primary = processes.find((p) => !p.worker)!;
  // It forks, restarts, reloads and answers [metrics]: the request path and the upstream client are the workers'.
  const requestPath = (name: string) => /^src\/(proxy|auth|http\/pipeline)/.test(name) || name === 'undici';
  assert.deepEqual(
    [...primary.packages].filter((name) => requestPath(name) || ON_DEMAND.includes(name)),
    [],
    `the primary loaded: ${[...primary.packages].join(', ')}`,
  );
  const workers = processes.filter((p) => p.worker);
  assert.equal(workers.length, 2);
  for (const { packages } of workers) {
    assert.ok(
      packages.has('src/http/pipeline.ts'),
      `the recorder sees what a worker loads: ${[...packages].join(', ')}`,
    );
    assert.deepEqual(
      ON_DEMAND.filter((name) => packages.has(name)),
      [],
      `a worker loaded: ${[...packages].join(', ')}`,
    );
  }
});

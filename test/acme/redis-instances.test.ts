// [store] backend = "redis": three real `gatehouse serve` processes, each with its own (unused) certs/ folder, share
// ACME through one real redis-server in front of real Pebble. One order per domain across the instances (a lock in
// Redis), any instance answers another's HTTP-01 token (only one holds the port Pebble validates on), every instance
// serves the certificate stored by the one that ordered (published), a killed lock holder is taken over once its
// lock expires, `certs export` writes what is served, and Redis going away never stops serving the certificate.
import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import fs from 'node:fs';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import { test, type TestContext } from 'node:test';
import { writeConfig } from '../harness/gatehouse-acme.ts';
import { freePort } from '../harness/net.ts';
import { startPebble, type Pebble } from '../harness/pebble.ts';
import { startRedis, type RedisServer } from '../harness/redis.ts';
import { spawnGatehouse } from '../harness/spawn-gatehouse.ts';
import { until, WAIT_MS } from '../harness/wait.ts';
import { acmeMain, acmeSite, presented } from '../harness/acme-setup.ts';

type Line = Record<string, unknown>;
const KEY = crypto.randomBytes(32).toString('base64');
const INSTALLED = 'certificate installed for new connections';
const ORDERING = 'ordering certificate';

interface Instance {
  name: string;
  pid: number;
  lines(): Line[];
  /** The first line from index `from` on that matches. */
  waitFor(pred: (line: Line) => boolean, what: string, from?: number): Promise<Line>;
  httpsPort(): Promise<number>;
  kill(signal: NodeJS.Signals): Promise<void>;
}

/** A config folder for one instance: its [http] listener on httpPort, everything ACME in Redis. */
async function instanceConfig(
  t: TestContext,
  pebble: Pebble,
  redis: RedisServer,
  httpPort: number,
  extra = '',
  acme: Record<string, string> = {},
): Promise<string> {
  const main = acmeMain(pebble, acme)
    .replace(`listen = ["127.0.0.1:${pebble.httpPort}"]`, `listen = ["127.0.0.1:${httpPort}"]`)
    .replace('[log]\n', '[log]\nlevel = "info"\n');
  const store = `[store]\nbackend = "redis"\nurl = "${redis.url}"\nprefix = "t:"\ncommand_timeout = "300ms"\nencryption_key = "${KEY}"\n`;
  const dir = writeConfig(`${main}${store}${extra}`, {
    'app.test': acmeSite(['app.test', 'www.app.test'], 'http://127.0.0.1:9'),
  });
  t.after(() => fs.rmSync(dir, { recursive: true, force: true }));
  return dir;
}

function serve(t: TestContext, name: string, dir: string): Instance {
  const p = spawnGatehouse(['serve', '--config', dir]);
  const parsed = () => p.lines.filter((l) => l.startsWith('{')).map((l) => JSON.parse(l) as Line);
  const exited = new Promise<void>((resolve) => p.child.once('exit', () => resolve()));
  const kill = async (signal: NodeJS.Signals) => {
    if (p.child.exitCode === null && p.child.signalCode === null) p.child.kill(signal);
    await exited;
  };
  t.after(async () => {
    if (p.child.exitCode !== null || p.child.signalCode !== null) return;
    const timer = setTimeout(() => p.child.kill('SIGKILL'), 5_000);
    await kill('SIGTERM');
    clearTimeout(timer);
  });
  const instance: Instance = {
    name,
    pid: p.child.pid!,
    lines: parsed,
    async waitFor(pred, what, from = 0) {
      let found: Line | undefined;
      await until(
        () => {
          found = parsed().slice(from).find(pred);
          if (!found && p.child.exitCode !== null) assert.fail(`${name} exited ${p.child.exitCode}:\n${p.stderr()}`);
          return found !== undefined;
        },
        () => `${name}: ${what}\n${p.lines.join('\n')}\n${p.stderr()}`,
        WAIT_MS,
      );
      return found!;
    },
    async httpsPort() {
      const listening = await instance.waitFor((l) => l.msg === 'listening', 'listening');
      return Number(String(listening.https).split(':').pop());
    },
    kill,
  };
  return instance;
}

function get(port: number, urlPath: string): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    http
      .get({ host: '127.0.0.1', port, path: urlPath }, (res) => {
        let body = '';
        res
          .setEncoding('utf8')
          .on('data', (d: string) => (body += d))
          .on('end', () => resolve({ status: res.statusCode ?? 0, body }));
      })
      .on('error', reject);
  });
}

async function ready(port: number): Promise<{ status: number; acme_storage?: { state: string } }> {
  const answer = await get(port, '/ready');
  return { status: answer.status, ...(JSON.parse(answer.body) as { acme_storage?: { state: string } }) };
}

test('three instances on one Redis: one order at the CA, every instance serves that certificate, certs export writes it', async (t) => {
  const [redis, pebble] = await Promise.all([startRedis(), startPebble()]);
  t.after(() => redis.stop());
  t.after(() => pebble.stop());
  // Only A holds the port Pebble validates on: whichever instance orders, A answers its token from Redis.
  const dirs = [
    await instanceConfig(t, pebble, redis, pebble.httpPort),
    await instanceConfig(t, pebble, redis, await freePort()),
    await instanceConfig(t, pebble, redis, await freePort()),
  ];
  const instances = dirs.map((dir, i) => serve(t, 'ABC'[i]!, dir));

  const installed = await Promise.all(
    instances.map((instance) => instance.waitFor((l) => l.msg === INSTALLED, 'the certificate installed')),
  );
  const all = instances.flatMap((instance) => instance.lines());
  assert.equal(all.filter((l) => l.msg === ORDERING).length, 1, 'one instance ordered');
  assert.equal(pebble.issued(), 1, 'one certificate issued by the CA');
  assert.deepEqual(installed.map((l) => l.origin).sort(), ['order', 'storage', 'storage']);
  assert.equal(new Set(installed.map((l) => l.serial)).size, 1, 'the same certificate everywhere');
  const serial = String(installed[0]!.serial);
  const ordered = installed.find((l) => l.origin === 'order')!;
  const lag = Math.max(...installed.map((l) => Number(l.time) - Number(ordered.time)));
  t.diagnostic(`stored by the ordering instance → installed by the last other instance: ${lag} ms`);

  const root = await pebble.rootPem();
  for (const instance of instances) {
    const cert = await presented(await instance.httpsPort(), 'www.app.test', root);
    assert.equal(cert.authorized, true, `${instance.name}: ${cert.authorizationError}`);
    assert.equal(cert.serial, serial, `${instance.name} serves the certificate`);
  }
  // Nothing usable at rest in Redis: the keys are sealed, the lock is released, the tokens are gone.
  const certHash = await redis.command('HGETALL', 't:acme:cert:app.test');
  assert.match(certHash, /BEGIN CERTIFICATE/);
  assert.doesNotMatch(certHash, /PRIVATE KEY/);
  assert.doesNotMatch(await redis.command('GET', 't:acme:account-key'), /PRIVATE KEY|\$-1/);
  assert.equal(await redis.command('EXISTS', 't:acme:lock:app.test'), ':0');
  assert.equal(await redis.command('KEYS', 't:acme:challenge:*'), '*0');
  for (const dir of dirs) assert.equal(fs.existsSync(path.join(dir, 'certs', 'app.test')), false, 'no files');

  // certs export, from any instance's configuration, writes the served pair.
  const out = fs.mkdtempSync(path.join(os.tmpdir(), 'gatehouse-export-'));
  t.after(() => fs.rmSync(out, { recursive: true, force: true }));
  const exported = spawnGatehouse(['certs', 'export', '--out', path.join(out, 'backup'), '--config', dirs[2]!]);
  const code = await new Promise<number | null>((resolve) => exported.child.once('exit', resolve));
  assert.equal(code, 0, exported.stderr());
  assert.match(exported.lines.join('\n'), new RegExp(`^app\\.test: serial ${serial}`, 'm'));
  const folder = path.join(out, 'backup', 'app.test');
  const chain = fs.readFileSync(path.join(folder, 'fullchain.pem'), 'utf8');
  const keyPem = fs.readFileSync(path.join(folder, 'privkey.pem'), 'utf8');
  const leaf = new crypto.X509Certificate(chain);
  assert.equal(leaf.serialNumber.toLowerCase(), serial);
  assert.ok(leaf.checkPrivateKey(crypto.createPrivateKey(keyPem)), 'the key belongs to the certificate');
  assert.equal(fs.statSync(path.join(folder, 'privkey.pem')).mode & 0o777, 0o600);
  assert.deepEqual(fs.readdirSync(folder).sort(), ['fullchain.pem', 'privkey.pem'], 'no temporary file left');

  // certs list reads the same store.
  const list = spawnGatehouse(['certs', 'list', '--config', dirs[1]!]);
  assert.equal(await new Promise((resolve) => list.child.once('exit', resolve)), 0, list.stderr());
  assert.match(list.lines.join('\n'), /^app\.test\s+acme\s+Pebble Intermediate CA \w+\s+\d{4}-/m);
});

test('kill -9 the instance holding the order lock mid-order: another takes over once the lock expires, one certificate results', async (t) => {
  const [redis, pebble] = await Promise.all([startRedis(), startPebble()]);
  t.after(() => redis.stop());
  t.after(() => pebble.stop());
  // B and C start without the instance holding the challenge port: the one that takes the lock publishes its token
  // and waits for it to be answered, holding the lock (and renewing it) as a slow order does.
  const b = serve(t, 'B', await instanceConfig(t, pebble, redis, await freePort()));
  const c = serve(t, 'C', await instanceConfig(t, pebble, redis, await freePort()));
  const waiting = 'waiting for the HTTP-01 token to be answered on this host before asking the CA to validate';
  const holder = await Promise.race(
    [b, c].map((instance) => instance.waitFor((l) => l.msg === waiting, 'an order waiting').then(() => instance)),
  );
  const survivor = holder === b ? c : b;
  await survivor.waitFor(
    (l) => l.msg === 'another Gatehouse process is ordering this certificate; will use its result',
    'the lock refused',
  );
  assert.match(await redis.command('GET', 't:acme:lock:app.test'), new RegExp(` ${holder.pid} `));
  assert.notEqual(await redis.command('KEYS', 't:acme:challenge:*'), '*0', 'the token is published in Redis');
  await holder.kill('SIGKILL');
  const killedAt = Date.now();

  const a = serve(t, 'A', await instanceConfig(t, pebble, redis, pebble.httpPort));
  const [fromSurvivor, fromA] = await Promise.all(
    [survivor, a].map((instance) => instance.waitFor((l) => l.msg === INSTALLED, 'the certificate installed')),
  );
  assert.equal(fromSurvivor!.serial, fromA!.serial, 'both serve the same certificate');
  assert.equal(pebble.issued(), 1, 'one certificate issued');
  assert.deepEqual([fromSurvivor!.origin, fromA!.origin].sort(), ['order', 'storage']);
  const root = await pebble.rootPem();
  for (const instance of [survivor, a]) {
    const cert = await presented(await instance.httpsPort(), 'app.test', root);
    assert.equal(cert.authorized, true);
    assert.equal(cert.serial, fromA!.serial);
  }
  assert.equal(await redis.command('EXISTS', 't:acme:lock:app.test'), ':0', 'the lock released');
  const takeover = [survivor, a]
    .flatMap((instance) => instance.lines())
    .filter((l) => l.msg === ORDERING)
    .map((l) => Number(l.time) - killedAt);
  t.diagnostic(`kill -9 of the lock holder → the next order began: ${Math.min(...takeover)} ms (lock TTL 10 s)`);
});

test('Redis down: the certificate keeps being served from memory, the renewal is postponed and /ready says so; all recovers when Redis returns', async (t) => {
  const [redis, pebble] = await Promise.all([startRedis(), startPebble({ validitySeconds: 30 })]);
  t.after(() => redis.stop());
  t.after(() => pebble.stop());
  const metrics = await freePort();
  const a = serve(
    t,
    'A',
    await instanceConfig(t, pebble, redis, pebble.httpPort, `[metrics]\nlisten = "127.0.0.1:${metrics}"\n`, {
      renew_ratio: '0.9',
    }),
  );
  const first = await a.waitFor((l) => l.msg === INSTALLED && l.origin === 'order', 'the first certificate');
  const port = await a.httpsPort();
  await until(async () => (await ready(metrics)).acme_storage?.state === 'up', '/ready: acme_storage up');

  await redis.down();
  const downAt = a.lines().length;
  const postponed = await a.waitFor(
    (l) => String(l.msg).startsWith('ACME storage unreachable: renewal postponed'),
    'the renewal postponed',
  );
  assert.ok(Number(postponed.retry_in_s) >= 0);
  const whileDown = await ready(metrics);
  assert.equal(whileDown.acme_storage?.state, 'degraded');
  assert.equal(whileDown.status, 200, 'still ready: certificates serve from memory');
  const served = a
    .lines()
    .filter((l) => l.msg === INSTALLED)
    .map((l) => l.serial);
  const cert = await presented(port, 'app.test', await pebble.rootPem());
  assert.equal(cert.serial, served.at(-1), 'the certificate in memory is served');
  assert.ok(
    a
      .lines()
      .slice(downAt)
      .every((l) => Number(l.level) < 60),
    'nothing fatal',
  );

  await redis.up();
  const upAt = Date.now();
  await until(async () => (await ready(metrics)).acme_storage?.state === 'up', '/ready: acme_storage up again');
  const afterUp = a.lines().length;
  const renewed = await a.waitFor(
    (l) => l.msg === INSTALLED && l.origin === 'order',
    'a renewal once Redis is back',
    afterUp,
  );
  t.diagnostic(`Redis back → the postponed renewal installed: ${Number(renewed.time) - upAt} ms`);
  assert.notEqual(
    first.serial,
    a
      .lines()
      .filter((l) => l.msg === INSTALLED)
      .at(-1)!.serial,
  );
});

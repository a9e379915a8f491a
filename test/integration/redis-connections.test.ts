// [store] backend = "redis": a `gatehouse serve` process with an [auth] site and an ACME site holds one pair of Redis
// connections (commands + pub/sub), shared by the session store and the ACME store, kept by SIGHUP reloads that
// leave [store] as it is, replaced by a reload that changes [store], and closed at stop. Counted by name in the real
// redis-server's CLIENT LIST.
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { test, type TestContext } from 'node:test';
import { loadConfig } from '../../src/config/load.ts';
import { runtimeReadiness } from '../../src/http/runtime.ts';
import { opAuth, SECRET, toml, writeAuthConfig } from '../harness/gatehouse-auth.ts';
import { serveFolder } from '../harness/gatehouse.ts';
import { startOP } from '../harness/op.ts';
import { startRedis, type RedisServer } from '../harness/redis.ts';
import { spawnGatehouse } from '../harness/spawn-gatehouse.ts';
import { until } from '../harness/wait.ts';

/** The connections a Gatehouse process opened (named gatehouse…), by name. */
async function gatehouseClients(redis: RedisServer): Promise<string[]> {
  const list = await redis.command('CLIENT', 'LIST');
  return [...list.matchAll(/ name=(gatehouse\S*)/g)].map((match) => match[1]!).sort();
}

/** A config folder: an [auth] site and an ACME site (its CA unreachable: orders fail and retry, which changes nothing
 *  to the connections), [store] on redis. */
async function configFolder(t: TestContext, redis: RedisServer, prefix = 'gatehouse:'): Promise<string> {
  const op = await startOP({ redirectUris: ['https://app.test/oauth2/callback'] });
  t.after(() => op.close());
  const dir = writeAuthConfig({
    sites: [
      {
        names: ['app.test'],
        auth: {
          ...opAuth(op.issuer),
          email_domains: ['*'],
        },
      },
    ],
  });
  t.after(() => fs.rmSync(dir, { recursive: true, force: true }));
  fs.writeFileSync(
    path.join(dir, 'sites', 'acme.toml'),
    'server_names = ["acme.test"]\n[tls]\nacme = true\n[[routes]]\npath = "/"\nupstream = "http://127.0.0.1:9"\n',
  );
  const main = fs.readFileSync(path.join(dir, 'gatehouse.toml'), 'utf8');
  fs.writeFileSync(path.join(dir, 'gatehouse.toml'), `${main}[http]\nlisten = ["127.0.0.1:0"]\n`);
  setStore(dir, redis, prefix);
  return dir;
}

/** Writes the [acme] and [store] tables after the main ones (a second call replaces them). */
function setStore(dir: string, redis: RedisServer, prefix: string): void {
  const file = path.join(dir, 'gatehouse.toml');
  const main = fs.readFileSync(file, 'utf8').replace(/\[acme\][\s\S]*$/, '');
  const acme = { directory: 'https://127.0.0.1:9/dir', email: 'ops@app.test', terms_of_service_agreed: true };
  const store = { backend: 'redis', url: redis.url, prefix, command_timeout: '300ms', encryption_key: SECRET };
  fs.writeFileSync(
    file,
    `${main}[acme]\n${toml({ ...acme, storage: 'certs', retry_min: '1m' })}\n[store]\n${toml(store)}\n`,
  );
}

test('`gatehouse serve` with [auth] and ACME on Redis: 2 connections (one pair), still 2 after 3 SIGHUP reloads, 0 after stop', async (t) => {
  const redis = await startRedis();
  t.after(() => redis.stop());
  const dir = await configFolder(t, redis);
  const gh = spawnGatehouse(['serve', '--config', dir]);
  const exited = new Promise<void>((resolve) => gh.child.once('exit', () => resolve()));
  t.after(() => {
    if (gh.child.exitCode === null && gh.child.signalCode === null) gh.child.kill('SIGKILL');
  });
  await gh.waitFor(/"msg":"listening"/);
  const pid = gh.child.pid!;
  const expected = [`gatehouse:${pid}:cmd`, `gatehouse:${pid}:sub`];
  await until(async () => (await gatehouseClients(redis)).length >= 2, 'the process connects to Redis');
  assert.equal((await gatehouseClients(redis)).length, 2, 'one command and one subscriber connection');
  assert.deepEqual(await gatehouseClients(redis), expected);

  for (let reload = 1; reload <= 3; reload++) {
    gh.child.kill('SIGHUP');
    await until(
      () => gh.lines.filter((line) => line.includes('"msg":"reloaded"')).length === reload,
      () => `reload ${reload}:\n${gh.lines.join('\n')}\n${gh.stderr()}`,
    );
    // Kept, not reopened: no third connection at any time.
    assert.deepEqual(await gatehouseClients(redis), expected, `after reload ${reload}`);
  }

  gh.child.kill('SIGTERM');
  await exited;
  await until(async () => (await gatehouseClients(redis)).length === 0, 'the connections close at stop');
});

test('in-process: a reload that changes [store] connects anew and closes the old pair; stop() closes the connections', async (t) => {
  const redis = await startRedis();
  t.after(() => redis.stop());
  const dir = await configFolder(t, redis);
  const served = await serveFolder(dir);
  let stopped = false;
  t.after(() => (stopped ? undefined : served.stop()));
  const name = `gatehouse:${process.pid}`;
  await until(async () => (await gatehouseClients(redis)).length >= 2, 'Gatehouse connects to Redis');
  assert.deepEqual(await gatehouseClients(redis), [`${name}:cmd`, `${name}:sub`]);
  // /ready: the sessions' store and the ACME storage are the one pair, so they report the same health.
  await until(() => runtimeReadiness(served.runtime).store?.state === 'up', 'the store is up');
  const ready = runtimeReadiness(served.runtime);
  assert.ok(ready.acme_storage, '/ready reports the ACME storage');
  assert.deepEqual(ready.acme_storage, ready.store);
  const before = await redis.command('CLIENT', 'LIST');
  const ids = (list: string) => [...list.matchAll(/id=(\d+) .* name=gatehouse/g)].map((m) => m[1]).sort();

  setStore(dir, redis, 'other:');
  await served.gatehouse.reload(loadConfig(dir));
  // The retired configuration had no request in flight: it closes, and its connections with it.
  await until(async () => {
    const now = await redis.command('CLIENT', 'LIST');
    return ids(now).length === 2 && ids(now).every((id) => !ids(before).includes(id));
  }, 'two new connections, the old ones closed');
  assert.deepEqual(await gatehouseClients(redis), [`${name}:cmd`, `${name}:sub`]);

  await served.stop();
  stopped = true;
  // QUIT is answered before the socket closes: the server may list it a moment longer.
  await until(async () => (await gatehouseClients(redis)).length === 0, 'the connections close at stop');
});

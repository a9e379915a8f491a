// The ACME store in Redis against a real redis-server: two RedisAcmeStore objects stand for two instances.
import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import fs from 'node:fs';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { test, type TestContext } from 'node:test';
import { createChallengeResponder } from '../../../src/acme/challenges.ts';
import { RedisAcmeStore } from '../../../src/acme/redis-store.ts';
import type { StoreConfig } from '../../../src/config/model.ts';
import { createTestCa } from '../../harness/pki.ts';
import { startRedis, type RedisServer } from '../../harness/redis.ts';
import { until } from '../../harness/wait.ts';

const KEY = crypto.randomBytes(32);

function config(port: number, encryptionKey: Buffer = KEY): Extract<StoreConfig, { backend: 'redis' }> {
  return {
    backend: 'redis',
    prefix: 'u:',
    commandTimeoutMs: 300,
    graceMs: 60_000,
    redis: { host: '127.0.0.1', port, db: 0, tls: false, sentinels: [] },
    encryptionKey,
  };
}

async function instances(
  t: TestContext,
  count: number,
  options: { lockTtlMs?: number; key?: Buffer } = {},
): Promise<{ redis: RedisServer; stores: RedisAcmeStore[] }> {
  const redis = await startRedis();
  t.after(() => redis.stop());
  const stores = Array.from({ length: count }, () => new RedisAcmeStore(config(redis.port, options.key), options));
  t.after(() => Promise.all(stores.map((store) => store.close())));
  for (const store of stores) assert.equal(await store.whenReady(30_000), true);
  return { redis, stores };
}

function pair(ca: ReturnType<typeof createTestCa>, name: string) {
  const issued = ca.issue([name]);
  return { certPem: issued.certPem, keyPem: fs.readFileSync(issued.keyFile, 'utf8') };
}

test('lock: one owner across instances, renewed while held, released only by its owner, taken over once it expires', async (t) => {
  const { redis, stores } = await instances(t, 2, { lockTtlMs: 600 });
  const [a, b] = stores as [RedisAcmeStore, RedisAcmeStore];
  const releaseA = await a.lock('a.test');
  assert.ok(releaseA, 'A holds the lock');
  assert.equal(await b.lock('a.test'), undefined, 'B is refused');
  // Renewed: its TTL goes back up while A holds it (PEXPIRE every TTL / 3).
  const first = Number((await redis.command('PTTL', 'u:acme:lock:a.test')).slice(1));
  await until(
    async () => Number((await redis.command('PTTL', 'u:acme:lock:a.test')).slice(1)) > first,
    'the lock renewed',
  );
  await releaseA();
  assert.equal(await redis.command('EXISTS', 'u:acme:lock:a.test'), ':0', 'released');

  // A holder that stopped renewing (its lock expired while it was frozen): B takes over, and A's late release
  // leaves B's lock alone (compare-and-delete).
  const late = (await a.lock('a.test'))!;
  await redis.command('PEXPIRE', 'u:acme:lock:a.test', '1');
  let releaseB: (() => Promise<void>) | undefined;
  await until(async () => (releaseB = await b.lock('a.test')) !== undefined, 'B takes the expired lock over');
  const owner = await redis.command('GET', 'u:acme:lock:a.test');
  await late();
  assert.equal(await redis.command('GET', 'u:acme:lock:a.test'), owner, "A's release did not remove B's lock");
  await releaseB!();
  assert.equal(await redis.command('EXISTS', 'u:acme:lock:a.test'), ':0');
});

test('HTTP-01: a token published by one instance is answered by another from Redis, expires with a TTL, and a frozen Redis gets 503', async (t) => {
  const { redis, stores } = await instances(t, 2);
  const [a, b] = stores as [RedisAcmeStore, RedisAcmeStore];
  const respond = createChallengeResponder(b.challenges);
  const server = http.createServer((req, res) => {
    if (!respond(req, res, 'req-1')) res.writeHead(418).end();
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  t.after(() => server.close());
  const port = (server.address() as AddressInfo).port;
  const get = (token: string) =>
    fetch(`http://127.0.0.1:${port}/.well-known/acme-challenge/${token}`, { headers: { host: 'a.test' } });

  await a.challenges.add('tok_1', 'tok_1.thumb');
  const answered = await get('tok_1');
  assert.equal(answered.status, 200);
  assert.equal(await answered.text(), 'tok_1.thumb');
  assert.ok(Number((await redis.command('PTTL', 'u:acme:challenge:tok_1')).slice(1)) > 0, 'with a TTL');
  assert.equal((await get('unknown')).status, 404);
  await assert.rejects(async () => a.challenges.add('../x', 'y'), /malformed challenge token/);

  redis.pause();
  t.after(() => redis.resume());
  const frozen = await get('tok_1');
  assert.equal(frozen.status, 503);
  assert.match(await frozen.text(), /ERR_ACME_STORE_UNAVAILABLE/);
  redis.resume();
  await until(async () => (await get('tok_1')).status === 200, 'answered again');

  await a.challenges.remove('tok_1');
  assert.equal((await get('tok_1')).status, 404, 'removed when the order is done');
});

test('certificates: the key rests sealed, another encryption_key reads nothing usable, a damaged pair falls back to the previous one, writes are published', async (t) => {
  const { redis, stores } = await instances(t, 2);
  const [a, b] = stores as [RedisAcmeStore, RedisAcmeStore];
  const ca = createTestCa();
  t.after(() => fs.rmSync(ca.dir, { recursive: true, force: true }));
  const [one, two] = [pair(ca, 'a.test'), pair(ca, 'a.test')];

  assert.deepEqual(await a.read('a.test'), { state: 'missing' });
  const heard: string[] = [];
  b.watch('a.test', () => heard.push('a.test'));
  await a.write('a.test', one, { domain: 'a.test' });
  await until(() => heard.length > 0, 'the write published to B');
  await a.write('a.test', two, { domain: 'a.test', serial: 'x' });
  const read = await b.read('a.test');
  assert.ok(read.state === 'ok');
  assert.deepEqual(read.pair, two);
  assert.deepEqual(await b.readMeta('a.test'), { domain: 'a.test', serial: 'x' });
  assert.deepEqual(await b.domains(), ['a.test']);
  const stored = await redis.command('HGETALL', 'u:acme:cert:a.test');
  assert.doesNotMatch(stored, /PRIVATE KEY/);

  const other = new RedisAcmeStore(config(redis.port, crypto.randomBytes(32)));
  t.after(() => other.close());
  await other.whenReady(30_000);
  const foreign = await other.read('a.test');
  assert.ok(foreign.state === 'corrupt');
  assert.match(foreign.reason, /does not decrypt with \[store\] encryption_key/);

  // The current chain damaged: the previous pair is served, with the problem said.
  await redis.command('HSET', 'u:acme:cert:a.test', 'chain', '-----BEGIN CERTIFICATE-----\nAAAA');
  const fallback = await a.read('a.test');
  assert.ok(fallback.state === 'ok');
  assert.deepEqual(fallback.pair, one);
  assert.match(fallback.problem ?? '', /no complete PEM certificate/);
});

test('account key: made once for every instance, sealed, retired aside when the CA refuses it', async (t) => {
  const { redis, stores } = await instances(t, 2);
  const [a, b] = stores as [RedisAcmeStore, RedisAcmeStore];
  const [fromA, fromB] = await Promise.all([a.accountKeys.load(), b.accountKeys.load()]);
  assert.equal(fromA, fromB, 'one key for both');
  assert.match(fromA, /PRIVATE KEY/);
  assert.doesNotMatch(await redis.command('GET', 'u:acme:account-key'), /PRIVATE KEY/);
  const retired = await a.accountKeys.retire(fromA);
  assert.match(retired ?? '', /^u:acme:account-key:deactivated-\d{8}T\d{6}Z$/);
  assert.equal(await b.accountKeys.retire(fromA), undefined, 'already replaced');
  assert.notEqual(await b.accountKeys.load(), fromA, 'a new key');
});

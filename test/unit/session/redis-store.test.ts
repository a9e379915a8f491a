// The Redis session store against a real redis-server: what the local stores do (get, put, update only while stored,
// delete by sid and by subject, versions), plus the refresh lease with an owner token and the fenced save, the
// published changes every instance drops its copy on, and the replay guard.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { RedisSessionStore } from '../../../src/session/redis-store.ts';
import type { SessionChange, StoredSession } from '../../../src/session/store.ts';
import { connectRedis } from '../../../src/store/redis.ts';
import { startRedis } from '../../harness/redis.ts';
import { until } from '../../harness/wait.ts';

const row = (key: string, version: number, extra: Partial<StoredSession> = {}): StoredSession => ({
  key,
  site: 'app',
  expiresAt: Date.now() + 60_000,
  sid: 'sid-1',
  sub: 'alice',
  version,
  data: Buffer.from(`sealed-${version}`),
  ...extra,
});

test('redis session store: rows, indexes, lease with owner token, fenced save, published changes, replay guard', async (t) => {
  const redis = await startRedis();
  t.after(() => redis.stop());
  const open = () =>
    new RedisSessionStore(
      connectRedis({
        backend: 'redis',
        prefix: 'u:',
        commandTimeoutMs: 500,
        graceMs: 60_000,
        redis: { host: '127.0.0.1', port: redis.port, db: 0, tls: false, sentinels: [] },
      }),
    );
  const one = open();
  const two = open();
  t.after(() => Promise.all([one.close(), two.close()]));
  const changes: SessionChange[] = [];
  two.onChange((change) => changes.push(change));
  await until(() => one.available() && two.available(), 'connected');

  await one.put(row('k1', 1));
  assert.deepEqual(await two.get('k1'), row('k1', 1, { expiresAt: (await two.get('k1'))!.expiresAt }));
  assert.equal(await two.version('k1'), 1);
  const pttl = Number((await redis.command('PTTL', 'u:session:k1')).slice(1));
  assert.ok(pttl > 0 && pttl <= 60_000, 'Redis drops the row at the session end');
  await until(() => changes.some((c) => c.kind === 'changed' && c.key === 'k1' && c.version === 1), 'published');

  // The lease: one owner at a time; the fenced save needs the lease and the version read.
  const owner = await one.claimRefresh('k1', Date.now(), 5_000);
  assert.ok(owner);
  assert.equal(await two.claimRefresh('k1', Date.now(), 5_000), undefined, 'held by one');
  assert.equal(await two.update(row('k1', 2), { lease: 'not-the-owner', expectedVersion: 1 }), false);
  assert.equal(await one.update(row('k1', 2), { lease: owner, expectedVersion: 7 }), false, 'version moved on');
  assert.equal(await one.version('k1'), 1, 'nothing saved by a refused fenced save');
  assert.equal(await one.renewRefresh('k1', owner, 5_000), true);
  assert.equal(await one.update(row('k1', 2), { lease: owner, expectedVersion: 1 }), true);
  assert.equal(await one.version('k1'), 2);
  assert.equal(await one.renewRefresh('k1', owner, 5_000), false, 'the save ended the lease');
  const next = await two.claimRefresh('k1', Date.now(), 5_000);
  assert.ok(next && next !== owner, 'free again, with a new owner token');
  // A lost lease (expired, taken by another) fences the old owner out.
  await redis.command('DEL', 'u:lease:k1');
  const third = await one.claimRefresh('k1', Date.now(), 5_000);
  assert.equal(await two.update(row('k1', 3), { lease: next, expectedVersion: 2 }), false);
  assert.equal(await one.update(row('k1', 3), { lease: third!, expectedVersion: 2 }), true);

  // update without a fence: only while stored.
  assert.equal(await one.update(row('gone', 1)), false);
  assert.equal(await one.get('gone'), undefined);

  // Logout by sid and by subject, on the site only; each end is published.
  await one.put(row('k2', 1, { sid: 'sid-2' }));
  await one.put(row('k3', 1, { sid: 'sid-3', sub: 'bob' }));
  await one.put(row('k4', 1, { site: 'other', sid: 'sid-2' }));
  assert.deepEqual(await two.deleteBySid('app', 'sid-2'), ['k2']);
  assert.deepEqual((await two.deleteBySub('app', 'alice')).sort(), ['k1']);
  assert.equal(await one.get('k1'), undefined);
  assert.ok(await one.get('k3'));
  assert.ok(await one.get('k4'), 'another site is untouched');
  await two.delete('k3');
  assert.equal(await one.version('k3'), undefined);
  await until(
    () =>
      ['k1', 'k2', 'k3'].every((key) => changes.some((c) => c.kind === 'ended' && c.key === key && c.site === 'app')),
    'every end published',
  );
  assert.equal(await redis.command('EXISTS', 'u:sid:app:sid-2', 'u:sub:app:alice', 'u:sub:app:bob'), ':0');

  // Replay guard, shared: the second use anywhere is refused.
  assert.equal(await one.firstUse('jti-1', Date.now() + 60_000), true);
  assert.equal(await two.firstUse('jti-1', Date.now() + 60_000), false);
});

import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { StoreConfig } from '../../../src/config/model.ts';
import { connectRedis } from '../../../src/store/redis.ts';
import { startRedis } from '../../harness/redis.ts';
import { until, within } from '../../harness/wait.ts';

function config(port: number, commandTimeoutMs = 300): Extract<StoreConfig, { backend: 'redis' }> {
  return {
    backend: 'redis',
    prefix: 'test:',
    commandTimeoutMs,
    graceMs: 60_000,
    redis: { host: '127.0.0.1', port, db: 0, tls: false, sentinels: [] },
  };
}

test('commands, pub/sub and health: up, degraded while Redis is frozen or gone (commands fail, never hang), up again by itself', async (t) => {
  const redis = await startRedis();
  t.after(() => redis.stop());
  const one = connectRedis(config(redis.port));
  const two = connectRedis(config(redis.port));
  t.after(() => Promise.all([one.close(), two.close()]));
  await until(() => one.health.state === 'up' && two.health.state === 'up', 'both connected');

  const received: string[] = [];
  two.subscribe('events', (message) => received.push(message));
  await until(async () => (await one.publish('events', 'hello')) && received.includes('hello'), 'a message across');
  await one.command.set('test:k', 'v');
  assert.equal(await two.command.get('test:k'), 'v');

  // Frozen: the connection is still open, nothing answers. A command fails after command_timeout.
  redis.pause();
  const frozen = await within(
    one.command.get('test:k').then(
      () => 'answered',
      (error: Error) => error.message,
    ),
    'a command to a frozen Redis',
  );
  assert.match(frozen, /timed out/i);
  redis.resume();
  assert.equal(await one.command.get('test:k'), 'v');

  // Gone: degraded, commands refused at once (nothing queued), then up again after a restart with its data.
  const changes: string[] = [];
  one.onHealth((h) => changes.push(h.state));
  const restarting = redis.restart();
  await until(() => one.health.state === 'degraded', 'degraded while Redis restarts');
  assert.ok(one.health.reason);
  await restarting;
  await until(() => one.health.state === 'up', 'up again after the restart');
  assert.deepEqual(changes.slice(-2), ['degraded', 'up']);
  assert.equal(await one.command.get('test:k'), 'v');
  // The subscription came back with the connection.
  await until(async () => (await one.publish('events', 'again')) && received.includes('again'), 'resubscribed');

  await redis.stop();
  await until(() => one.health.state === 'degraded', 'degraded once Redis is gone');
  const refused = await within(
    one.command.get('test:k').then(
      () => 'answered',
      (error: Error) => error.message,
    ),
    'a command while Redis is gone',
  );
  assert.match(refused, /enableOfflineQueue|writeable|Connection is closed/i);
});

test('borrow(): a borrower uses the same connections; its close() ends its own subscriptions and health listeners, never the connections', async (t) => {
  const redis = await startRedis();
  t.after(() => redis.stop());
  const owner = connectRedis(config(redis.port));
  t.after(() => owner.close());
  const first = owner.borrow();
  const second = owner.borrow();
  assert.equal(first.command, owner.command);
  assert.equal(second.subscriber, owner.subscriber);
  await until(() => first.health.state === 'up', 'connected');

  const got: Record<string, string[]> = { first: [], second: [] };
  first.subscribe('events', (message) => got.first!.push(message));
  second.subscribe('events', (message) => got.second!.push(message));
  const healthSeen: string[] = [];
  first.onHealth((health) => healthSeen.push(health.state));
  await until(async () => (await owner.publish('events', 'a')) && got.second!.includes('a'), 'a message to both');
  assert.ok(got.first!.includes('a'));

  await first.close();
  await until(async () => (await second.publish('events', 'b')) && got.second!.includes('b'), 'after one closed');
  assert.ok(!got.first!.includes('b'), 'a closed borrower hears nothing more');
  assert.equal(owner.command.status, 'ready', 'the connections stay open');
  assert.equal(await second.command.ping(), 'PONG');
  // The closed borrower's health listener is gone too: a change of health reaches nobody through it.
  await redis.down();
  await until(() => owner.health.state === 'degraded', 'degraded');
  assert.deepEqual(healthSeen, []);
  await redis.up();
  await until(() => owner.health.state === 'up', 'up again');
});

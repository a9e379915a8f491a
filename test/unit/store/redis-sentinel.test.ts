// [store] sentinels + master_name: the connections find the master through a real Redis Sentinel
// (redis-server --sentinel) and work as with a url.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { test } from 'node:test';
import { connectRedis } from '../../../src/store/redis.ts';
import { freePort } from '../../harness/net.ts';
import { startRedis } from '../../harness/redis.ts';
import { until, WAIT_MS } from '../../harness/wait.ts';

test('sentinels + master_name: the master is found through Redis Sentinel', async (t) => {
  const redis = await startRedis();
  t.after(() => redis.stop());
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'gatehouse-sentinel-'));
  t.after(() => fs.rmSync(dir, { recursive: true, force: true }));
  const port = await freePort();
  const conf = path.join(dir, 'sentinel.conf');
  fs.writeFileSync(
    conf,
    `port ${port}\nbind 127.0.0.1\ndir ${dir}\nsentinel monitor gatehouse 127.0.0.1 ${redis.port} 1\nsentinel down-after-milliseconds gatehouse 5000\n`,
  );
  const sentinel = spawn('redis-server', [conf, '--sentinel'], { stdio: ['ignore', 'pipe', 'pipe'] });
  t.after(() => {
    if (sentinel.exitCode === null) sentinel.kill('SIGKILL');
  });
  let log = '';
  await new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`sentinel did not start:\n${log}`)), WAIT_MS);
    sentinel.stdout!.on('data', (chunk: Buffer) => {
      log += chunk;
      if (log.includes('+monitor master gatehouse')) {
        clearTimeout(timer);
        resolve();
      }
    });
  });

  const connections = connectRedis({
    backend: 'redis',
    prefix: 's:',
    commandTimeoutMs: 500,
    graceMs: 60_000,
    redis: {
      host: '',
      port: 6379,
      db: 0,
      tls: false,
      sentinels: [{ host: '127.0.0.1', port }],
      masterName: 'gatehouse',
    },
  });
  t.after(() => connections.close());
  await until(
    () => connections.health.state === 'up',
    () => `connected through the sentinel: ${connections.health.reason}`,
  );
  await connections.command.set('s:k', 'through-sentinel');
  assert.equal(await redis.command('GET', 's:k'), '$16\r\nthrough-sentinel');
});

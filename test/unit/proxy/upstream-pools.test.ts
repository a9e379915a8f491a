import { test } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { UpstreamGroupPool } from '../../../src/proxy/upstream-pools.ts';
import type { ExchangeHandler, Retry } from '../../../src/proxy/upstream-connection.ts';

test('close() ends even when an upstream request never finishes', async (t) => {
  // An upstream that sends its headers and then nothing: the request stays in flight for ever.
  const upstream = http.createServer((_req, res) => {
    res.writeHead(200, { 'content-type': 'text/plain' });
    res.write('x');
  });
  await new Promise<void>((resolve) => upstream.listen(0, '127.0.0.1', resolve));
  t.after(() => {
    upstream.closeAllConnections();
    upstream.close();
  });
  const group = new UpstreamGroupPool({
    name: 'backend',
    servers: [`http://127.0.0.1:${(upstream.address() as AddressInfo).port}`],
    failTimeoutMs: 10_000,
    keepalive: 4,
    maxPending: 8,
  });
  const pool = group.servers[0]!.pool;
  const connection = pool.acquire(5000);
  let failed: [Error, Retry] | undefined;
  let started: () => void;
  const firstByte = new Promise<void>((resolve) => (started = resolve));
  const handler: ExchangeHandler = {
    onHead: () => {},
    onData: () => {
      started();
      return true;
    },
    onReadDone: () => {},
    onEnd: () => assert.fail('the response never ends'),
    onFail: (error, retry) => (failed = [error, retry]),
  };
  connection.start(handler, 'GET / HTTP/1.1\r\nhost: a\r\n\r\n', null, false, {
    readTimeoutMs: 60_000,
    sendTimeoutMs: 60_000,
  });
  await firstByte;
  assert.equal(pool.size, 1);

  await group.close(50);
  assert.equal(connection.socket.destroyed, true);
  assert.equal(pool.size, 0, 'the connection was destroyed after the grace period');
  assert.ok(failed, 'the exchange was told it failed');
});

test('a free connection slot is taken at once (no promise); a full server queues, busy past max_pending', async () => {
  const group = new UpstreamGroupPool({
    name: 'backend',
    servers: ['http://127.0.0.1:9'],
    failTimeoutMs: 10_000,
    keepalive: 1,
    maxPending: 1,
  });
  const server = group.servers[0]!;
  const client = { gone: false, cancels: undefined, settle() {} };
  const first = group.acquire(server, client, 60_000);
  assert.ok(!(first instanceof Promise) && typeof first === 'object', 'a free slot: the answer comes at once');
  const queued = group.acquire(server, client, 60_000);
  assert.ok(queued instanceof Promise, 'no free slot: wait in line');
  assert.equal(group.acquire(server, client, 60_000), 'busy', 'max_pending requests already wait');
  first.release();
  first.release(); // a second release frees nothing more
  const second = await queued;
  assert.ok(typeof second === 'object');
  assert.equal(server.active, 1, 'the slot passed to the request that waited');
  second.release();
  assert.equal(server.active, 0);
  assert.equal(group.acquire(server, { ...client, gone: true }, 60_000), 'cancelled');
  group.destroy();
});

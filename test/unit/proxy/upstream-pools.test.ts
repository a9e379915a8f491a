import { test } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { UpstreamGroupPool } from '../../../src/proxy/upstream-pools.ts';

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
  const pool = group.poolFor(group.servers[0]!, 5000);
  const response = await pool.request({ path: '/', method: 'GET' });
  response.body.on('error', () => {
    /* destroyed by close() below */
  });
  response.body.resume();

  await group.close(50);
  assert.equal(pool.destroyed, true, 'the pool was destroyed after the grace period');
});

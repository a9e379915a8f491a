import { test } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { UpstreamPool } from '../../../src/proxy/upstream-pool.ts';
import type { ExchangeHandler } from '../../../src/proxy/upstream-connection.ts';

test('a response whose last piece met backpressure leaves its keep-alive connection reading: the next exchange on it completes', async (t) => {
  const upstream = http.createServer((req, res) => {
    const size = Number(req.url!.slice(1));
    res.setHeader('content-length', size);
    res.end(Buffer.alloc(size, 1));
  });
  await new Promise<void>((resolve) => upstream.listen(0, '127.0.0.1', resolve));
  t.after(() => {
    upstream.closeAllConnections();
    upstream.close();
  });
  const pool = new UpstreamPool(`http://127.0.0.1:${(upstream.address() as AddressInfo).port}`);
  t.after(() => pool.destroy());
  // Small bodies (llhttp's path) and large ones (the connection's own), each to a client that takes every piece only
  // after a turn of the event loop: every piece, the last one too, pauses the connection.
  for (const size of [10, 200_000, 30, 200_000]) {
    const connection = pool.acquire(5000);
    let received = 0;
    const outcome = await new Promise<string>((resolve) => {
      connection.start(
        {
          onHead: () => {},
          onData: (chunk) => {
            received += chunk.length;
            setImmediate(connection.resume);
            return false;
          },
          onReadDone: () => {},
          onEnd: () => resolve('end'),
          onFail: (error) => resolve(`failed: ${error.message}`),
        },
        `GET /${size} HTTP/1.1\r\nhost: a\r\n\r\n`,
        null,
        false,
        // A connection that stopped reading would fail this exchange by its read timeout.
        { readTimeoutMs: 5_000, sendTimeoutMs: 60_000 },
      );
    });
    assert.equal(outcome, 'end', `${size} bytes`);
    assert.equal(received, size);
  }
  assert.equal(pool.size, 1, 'one kept-alive connection served all four');
});

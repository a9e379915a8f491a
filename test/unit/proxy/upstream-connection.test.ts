import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { once } from 'node:events';
import http from 'node:http';
import net, { type AddressInfo } from 'node:net';
import { READ_SIZE } from '../../../src/proxy/read-buffers.ts';
import { UpstreamPool } from '../../../src/proxy/upstream-pool.ts';
import type { ExchangeHandler } from '../../../src/proxy/upstream-connection.ts';

test('a Content-Length body is relayed from a few reused read buffers, each back only once its write has completed', async (t) => {
  // 32 MB from node:http to a real client socket: llhttp's copy per read would be one new ArrayBuffer per read (≥ 500).
  const body = randomBytes(32 * 1024 * 1024);
  const upstream = http.createServer((_req, res) => res.end(body));
  await new Promise<void>((resolve) => upstream.listen(0, '127.0.0.1', resolve));
  t.after(() => {
    upstream.closeAllConnections();
    upstream.close();
  });
  // The client: a socket pair through a real server; its reader hashes what it gets.
  const sink = net.createServer();
  await new Promise<void>((resolve) => sink.listen(0, '127.0.0.1', resolve));
  t.after(() => sink.close());
  const accepted = once(sink, 'connection') as Promise<[net.Socket]>;
  const client = net.connect((sink.address() as AddressInfo).port, '127.0.0.1');
  const [reader] = await accepted;
  t.after(() => client.destroy());
  const hash = createHash('sha256');
  let received = 0;
  reader.on('data', (chunk: Buffer) => {
    hash.update(chunk);
    received += chunk.length;
  });

  const pool = new UpstreamPool(`http://127.0.0.1:${(upstream.address() as AddressInfo).port}`);
  t.after(() => pool.destroy());
  const connection = pool.acquire(5000);
  const buffers = new Set<ArrayBufferLike>();
  const inFlight = new Set<ArrayBufferLike>();
  let reusedInFlight = 0;
  let ended: () => void;
  const done = new Promise<void>((resolve) => (ended = resolve));
  const handler: ExchangeHandler = {
    onHead: (status) => assert.equal(status, 200),
    onData: (chunk, written) => {
      // A buffer handed out again before the write that held it completed would corrupt what the client receives.
      if (inFlight.has(chunk.buffer)) reusedInFlight++;
      buffers.add(chunk.buffer);
      inFlight.add(chunk.buffer);
      const more = client.write(chunk, () => {
        inFlight.delete(chunk.buffer);
        written?.();
      });
      if (!more) client.once('drain', connection.resume);
      return more;
    },
    onReadDone: () => {},
    onEnd: () => ended(),
    onFail: (error) => assert.fail(error),
  };
  connection.start(handler, 'GET / HTTP/1.1\r\nhost: a\r\n\r\n', null, false, {
    readTimeoutMs: 60_000,
    sendTimeoutMs: 60_000,
  });
  await done;
  client.end();
  await once(reader, 'end');
  assert.equal(received, body.length);
  assert.equal(hash.digest('hex'), createHash('sha256').update(body).digest('hex'));
  assert.equal(reusedInFlight, 0, 'no read buffer was reused while a write held it');
  assert.ok(buffers.size <= 16, `the body came through ${buffers.size} distinct buffers, not one per read`);
});

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
  for (const size of [10, 2 * READ_SIZE, 30, 2 * READ_SIZE]) {
    const connection = pool.acquire(5000);
    let received = 0;
    const outcome = await new Promise<string>((resolve) => {
      connection.start(
        {
          onHead: () => {},
          onData: (chunk, written) => {
            received += chunk.length;
            setImmediate(() => {
              written?.();
              connection.resume();
            });
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

// Gatehouse's own HTTP/1.1 upstream client (upstream-pool.ts, upstream-connection.ts) against real upstreams: Express 5
// and Hono for what frameworks send, raw `net` servers for what only a broken or hostile upstream sends.
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import fs from 'node:fs';
import https from 'node:https';
import http from 'node:http';
import http2 from 'node:http2';
import net, { type AddressInfo } from 'node:net';
import { once } from 'node:events';
import path from 'node:path';
import { test, type TestContext } from 'node:test';
import express from 'express';
import { Hono } from 'hono';
import { serve } from '@hono/node-server';
import { streamText } from 'hono/streaming';
import { readAll } from '../harness/backend.ts';
import { request } from '../harness/clients.ts';
import { groupSiteToml, siteToml, startGatehouse } from '../harness/gatehouse.ts';
import { READ_SIZE } from '../../src/proxy/read-buffers.ts';
import { createTestCa } from '../harness/pki.ts';

const ca = createTestCa();
const cert = ca.issue(['app.test']);
const get = (port: number, path: string, extra: Parameters<typeof request>[1] = { ca: ca.caPem }) =>
  request(port, { servername: 'app.test', path, ...extra });

/** Listens on 127.0.0.1:0, counts the TCP connections it accepts, and closes everything when the test ends. */
async function listen(t: TestContext, server: net.Server): Promise<{ url: string; connections: () => number }> {
  let connections = 0;
  const sockets = new Set<net.Socket>();
  server.on('connection', (socket: net.Socket) => {
    connections++;
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  t.after(() => {
    for (const socket of sockets) socket.destroy();
    return new Promise<void>((resolve) => server.close(() => resolve()));
  });
  return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, connections: () => connections };
}

/** A raw upstream: `answer` gets each request's head (as text) and its socket, and writes whatever it likes. */
async function rawUpstream(t: TestContext, answer: (head: string, socket: net.Socket, index: number) => void) {
  let index = 0;
  const server = net.createServer((socket) => {
    let buffered = '';
    socket.setEncoding('latin1');
    socket.on('error', () => {});
    socket.on('data', (chunk: string) => {
      buffered += chunk;
      let end: number;
      while ((end = buffered.indexOf('\r\n\r\n')) >= 0) {
        const head = buffered.slice(0, end);
        buffered = buffered.slice(end + 4);
        answer(head, socket, index++);
      }
    });
  });
  return listen(t, server);
}

test('framing from Express 5: Content-Length, chunked, HEAD, 204, 304, 1xx before the answer; one kept-alive connection', async (t) => {
  const app = express();
  app.get('/length', (_req, res) => {
    res.send('fixed length body');
  });
  app.get('/chunked', (_req, res) => {
    res.write('one,');
    res.write('two,');
    res.end('three');
  });
  app.get('/empty', (_req, res) => {
    res.status(204).end();
  });
  app.get('/etag', (_req, res) => {
    res.set('etag', '"v1"').send('cached body');
  });
  app.get('/hints', (_req, res) => {
    res.writeEarlyHints({ link: '</style.css>; rel=preload; as=style' });
    res.writeContinue();
    res.send('after hints');
  });
  const backend = await listen(t, http.createServer(app));
  const gh = await startGatehouse(t, { sites: { app: siteToml(['app.test'], cert, backend.url) } });

  const length = await get(gh.port, '/length');
  assert.equal(length.status, 200);
  assert.equal(length.body, 'fixed length body');
  assert.equal(length.headers['content-length'], '17');

  const chunked = await get(gh.port, '/chunked');
  assert.equal(chunked.body, 'one,two,three');

  const head = await get(gh.port, '/length', { ca: ca.caPem, method: 'HEAD' });
  assert.equal(head.status, 200);
  assert.equal(head.body, '');
  assert.equal(head.headers['content-length'], '17', 'HEAD keeps the length of the body it does not carry');

  const empty = await get(gh.port, '/empty');
  assert.equal(empty.status, 204);
  assert.equal(empty.body, '');

  const notModified = await get(gh.port, '/etag', { ca: ca.caPem, headers: { 'if-none-match': '"v1"' } });
  assert.equal(notModified.status, 304);
  assert.equal(notModified.body, '');

  const hints = await get(gh.port, '/hints');
  assert.equal(hints.status, 200);
  assert.equal(hints.body, 'after hints');

  // Each exchange ended cleanly, so all of them (and the length one after HEAD and 304) shared one connection.
  const again = await get(gh.port, '/length');
  assert.equal(again.body, 'fixed length body');
  assert.equal(backend.connections(), 1, 'the upstream saw every request over one kept-alive connection');
});

test('Hono streaming through @hono/node-server: chunks relayed in order; an HTTP/2 body of unknown length goes chunked', async (t) => {
  const app = new Hono();
  app.get('/stream', (c) =>
    streamText(c, async (stream) => {
      for (let i = 0; i < 5; i++) await stream.write(`part${i};`);
    }),
  );
  app.post('/echo', async (c) =>
    c.json({
      te: c.req.header('transfer-encoding') ?? null,
      cl: c.req.header('content-length') ?? null,
      body: await c.req.text(),
    }),
  );
  const server = serve({ fetch: app.fetch, port: 0, hostname: '127.0.0.1' }) as http.Server;
  await once(server, 'listening');
  t.after(() => new Promise<void>((resolve) => server.close(() => resolve())));
  const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  const gh = await startGatehouse(t, { sites: { app: siteToml(['app.test'], cert, url) } });

  const streamed = await get(gh.port, '/stream');
  assert.equal(streamed.body, 'part0;part1;part2;part3;part4;');

  const session = http2.connect(`https://127.0.0.1:${gh.port}`, { ca: ca.caPem, servername: 'app.test' });
  t.after(() => session.close());
  const stream = session.request({ ':method': 'POST', ':path': '/echo', ':authority': 'app.test' });
  stream.write('first ');
  stream.end('second');
  const [echo] = await Promise.all([readAll(stream), once(stream, 'response')]);
  assert.deepEqual(JSON.parse(echo), { te: 'chunked', cl: null, body: 'first second' });
});

test('an upstream that sends two Content-Lengths, or one with Transfer-Encoding, gets 502 and its connection is dropped', async (t) => {
  const upstream = await rawUpstream(t, (head, socket) => {
    if (head.startsWith('GET /double'))
      socket.write('HTTP/1.1 200 OK\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\nhello!');
    else if (head.startsWith('GET /both'))
      socket.write('HTTP/1.1 200 OK\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n');
    else socket.write('HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok');
  });
  const gh = await startGatehouse(t, { sites: { app: siteToml(['app.test'], cert, upstream.url) } });

  assert.equal((await get(gh.port, '/fine')).body, 'ok');
  const double = await get(gh.port, '/double', { ca: ca.caPem, headers: { accept: 'application/json' } });
  assert.equal(double.status, 502);
  assert.equal(JSON.parse(double.body).error, 'ERR_UPSTREAM_RESET');
  const both = await get(gh.port, '/both', { ca: ca.caPem, headers: { accept: 'application/json' } });
  assert.equal(both.status, 502);
  assert.equal((await get(gh.port, '/fine')).body, 'ok');
  // /fine and /double shared the first connection; /both and the last /fine each needed a new one.
  assert.equal(upstream.connections(), 3, 'a connection that carried an invalid response is never reused');
});

test('response smuggling: bytes an upstream sends beyond its answer never reach the next request', async (t) => {
  let strayClosed: Promise<unknown> = Promise.resolve();
  const upstream = await rawUpstream(t, (head, socket, index) => {
    if (head.startsWith('GET /same-write'))
      socket.write(
        'HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok' + 'HTTP/1.1 200 OK\r\nContent-Length: 8\r\n\r\nsmuggled',
      );
    else if (head.startsWith('GET /later')) {
      strayClosed = once(socket, 'close');
      socket.write('HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok');
      setImmediate(() => socket.write('HTTP/1.1 200 OK\r\nContent-Length: 8\r\n\r\nsmuggled'));
    } else socket.write(`HTTP/1.1 200 OK\r\nContent-Length: 6\r\n\r\nreal-${index % 10}`);
  });
  const gh = await startGatehouse(t, { sites: { app: siteToml(['app.test'], cert, upstream.url) } });

  // In the same read as the answer: the connection is dropped at once.
  assert.equal((await get(gh.port, '/same-write')).body, 'ok');
  assert.match((await get(gh.port, '/next')).body, /^real-\d$/);
  assert.equal(upstream.connections(), 2);
  // In a later read, on the idle connection: Gatehouse closes it. (Bytes that arrive only after the next request went
  // out cannot be told from its answer in HTTP/1.1, for any proxy; hence the wait for the close here.)
  assert.equal((await get(gh.port, '/later')).body, 'ok');
  await strayClosed;
  for (let i = 0; i < 3; i++) assert.match((await get(gh.port, '/next')).body, /^real-\d$/);
  assert.equal(upstream.connections(), 3);
});

test('trailers of a chunked response are dropped and never leak into the next response on the connection', async (t) => {
  const upstream = await rawUpstream(t, (head, socket) => {
    if (head.startsWith('GET /trailer'))
      socket.write(
        'HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nTrailer: X-Leak\r\n\r\n4\r\nbody\r\n0\r\nX-Leak: yes\r\n\r\n',
      );
    else socket.write('HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\nnext');
  });
  const gh = await startGatehouse(t, { sites: { app: siteToml(['app.test'], cert, upstream.url) } });
  const first = await get(gh.port, '/trailer');
  assert.equal(first.body, 'body');
  assert.equal(first.headers['x-leak'], undefined);
  const next = await get(gh.port, '/next');
  assert.equal(next.body, 'next');
  assert.equal(next.headers['x-leak'], undefined, 'the trailer did not become a header of the next response');
  assert.equal(upstream.connections(), 1);
});

test('a repeated single-value header reaches an HTTP/2 client once (the first), and HTTP/1.1 clients as sent', async (t) => {
  const upstream = await rawUpstream(t, (_head, socket) => {
    socket.write(
      'HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nETag: "a"\r\nContent-Type: text/html\r\nETag: "b"\r\n' +
        'Set-Cookie: one=1\r\nSet-Cookie: two=2\r\nContent-Length: 4\r\n\r\nbody',
    );
  });
  const gh = await startGatehouse(t, { sites: { app: siteToml(['app.test'], cert, upstream.url) } });
  const session = http2.connect(`https://127.0.0.1:${gh.port}`, { ca: ca.caPem, servername: 'app.test' });
  t.after(() => session.close());
  const stream = session.request({ ':path': '/', ':authority': 'app.test' });
  const [[headers], body] = await Promise.all([
    once(stream, 'response') as Promise<[http2.IncomingHttpHeaders]>,
    readAll(stream),
  ]);
  assert.equal(headers[':status'], 200);
  assert.equal(body, 'body');
  assert.equal(headers['content-type'], 'text/plain');
  assert.equal(headers.etag, '"a"');
  assert.deepEqual(headers['set-cookie'], ['one=1', 'two=2']);
  const h1 = await get(gh.port, '/');
  assert.equal(h1.status, 200);
  assert.deepEqual(h1.headers['set-cookie'], ['one=1', 'two=2']);
});

test('a close-delimited body is relayed whole, and its connection is not reused', async (t) => {
  const upstream = await rawUpstream(t, (_head, socket) => {
    socket.end('HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n\r\nuntil the close');
  });
  const gh = await startGatehouse(t, { sites: { app: siteToml(['app.test'], cert, upstream.url) } });
  const first = await get(gh.port, '/');
  assert.equal(first.status, 200);
  assert.equal(first.body, 'until the close');
  assert.equal((await get(gh.port, '/')).body, 'until the close');
  assert.equal(upstream.connections(), 2);
});

test('an upstream that closes mid-response gives the client a broken response, never a short complete one', async (t) => {
  const upstream = await rawUpstream(t, (head, socket) => {
    if (head.startsWith('GET /chunked'))
      socket.end('HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n');
    else socket.end('HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nonly ten b');
  });
  const gh = await startGatehouse(t, { sites: { app: siteToml(['app.test'], cert, upstream.url) } });
  for (const path of ['/length', '/chunked']) {
    const outcome = await get(gh.port, path).then(
      (reply) => `complete: ${reply.body}`,
      (error: NodeJS.ErrnoException) => `broken: ${error.code}`,
    );
    assert.match(outcome, /^broken: /, `${path}: ${outcome}`);
  }
  const session = http2.connect(`https://127.0.0.1:${gh.port}`, { ca: ca.caPem, servername: 'app.test' });
  t.after(() => session.close());
  const stream = session.request({ ':path': '/length', ':authority': 'app.test' });
  stream.resume();
  stream.on('error', () => {});
  await new Promise((resolve) => stream.on('close', resolve));
  assert.notEqual(stream.rstCode, http2.constants.NGHTTP2_NO_ERROR, 'the HTTP/2 stream is reset, not ended');
});

test('a keep-alive connection the upstream closed as the request arrived: GET goes again on a new one, POST does not', async (t) => {
  // A request marked x-drop that is not the first on its connection is dropped unanswered, as by a server whose
  // keep-alive timeout fired just as the request came in.
  const perConnection = new Map<net.Socket, { id: number; requests: number }>();
  const seen: string[] = [];
  const upstream = await rawUpstream(t, (head, socket) => {
    if (!perConnection.has(socket)) perConnection.set(socket, { id: perConnection.size + 1, requests: 0 });
    const connection = perConnection.get(socket)!;
    connection.requests++;
    seen.push(`${connection.id} ${head.split(' ', 2).join(' ')}`);
    if (connection.requests > 1 && head.includes('x-drop: yes')) return void socket.destroy();
    socket.write('HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok');
  });
  const gh = await startGatehouse(t, { sites: { app: siteToml(['app.test'], cert, upstream.url) } });

  assert.equal((await get(gh.port, '/one')).body, 'ok');
  const retried = await get(gh.port, '/two', { ca: ca.caPem, headers: { 'x-drop': 'yes' } });
  assert.equal(retried.status, 200, 'the GET went again on a fresh connection');
  assert.deepEqual(seen, ['1 GET /one', '1 GET /two', '2 GET /two']);

  const post = await get(gh.port, '/three', {
    ca: ca.caPem,
    method: 'POST',
    body: 'data',
    headers: { 'x-drop': 'yes', accept: 'application/json' },
  });
  // The upstream may have acted on a POST it got: it is not sent twice.
  assert.equal(post.status, 502);
  assert.equal(JSON.parse(post.body).error, 'ERR_UPSTREAM_RESET');
  assert.deepEqual(seen.slice(3), ['2 POST /three']);
});

test('an idle connection the upstream closed never fails the next request', async (t) => {
  const app = express();
  app.get('/', (_req, res) => {
    res.send('fresh');
  });
  const server = http.createServer(app);
  // The upstream drops idle keep-alive connections almost at once.
  server.keepAliveTimeout = 1;
  const closed: Promise<unknown>[] = [];
  server.on('connection', (socket: net.Socket) => closed.push(once(socket, 'close')));
  const backend = await listen(t, server);
  const gh = await startGatehouse(t, { sites: { app: siteToml(['app.test'], cert, backend.url) } });
  for (let i = 1; i <= 5; i++) {
    assert.equal((await get(gh.port, '/')).body, 'fresh');
    assert.equal(backend.connections(), i);
    // The next request comes only once the upstream has closed the idle connection.
    await closed[i - 1];
  }
});

test('backpressure: a client that stops reading stops the upstream too; Gatehouse never buffers the 50 MB body', async (t) => {
  const total = 50 * 1024 * 1024;
  const piece = Buffer.alloc(64 * 1024, 'z');
  let sent = 0;
  let blocked: () => void = () => {};
  let finished = false;
  const app = express();
  app.get('/big', (_req, res) => {
    res.set('content-length', String(total));
    const pump = () => {
      while (sent < total) {
        sent += piece.length;
        if (!res.write(piece)) {
          blocked();
          return void res.once('drain', pump);
        }
      }
      finished = true;
      res.end();
    };
    pump();
  });
  const backend = await listen(t, http.createServer(app));
  const gh = await startGatehouse(t, {
    sites: { app: siteToml(['app.test'], cert, backend.url, '', 'send_timeout = "60s"') },
  });
  const req = https.get({
    host: '127.0.0.1',
    port: gh.port,
    ca: ca.caPem,
    servername: 'app.test',
    path: '/big',
    headers: { host: 'app.test' },
    agent: false,
  });
  const [res] = (await once(req, 'response')) as [http.IncomingMessage];
  res.pause();
  // Wait until the upstream has been blocked for a whole second with no progress (the client reads nothing).
  for (let last = -1; last !== sent;) {
    last = sent;
    await new Promise<void>((resolve) => {
      blocked = resolve;
      setTimeout(resolve, 1000);
    });
  }
  assert.equal(finished, false, 'the upstream could not send the whole body to a client that reads nothing');
  assert.ok(sent < total / 2, `the upstream got only ${sent} bytes out before it was paused`);
  let received = 0;
  res.on('data', (chunk: Buffer) => {
    received += chunk.length;
  });
  res.resume();
  await once(res, 'end');
  assert.equal(received, total, 'once the client reads again, the whole body arrives');
});

test('a client that goes away frees its upstream connection: the next request gets the slot at once', async (t) => {
  const closedUpstream: string[] = [];
  let arrived: () => void;
  const hanging = new Promise<void>((resolve) => (arrived = resolve));
  const app = express();
  app.get('/hang', (req) => {
    req.socket.once('close', () => closedUpstream.push('hang'));
    arrived();
  });
  app.get('/fast', (_req, res) => {
    res.send('fast');
  });
  const backend = await listen(t, http.createServer(app));
  const gh = await startGatehouse(t, {
    sites: { app: groupSiteToml(cert, backend.url, 'keepalive = 1\nmax_pending = 4') },
  });
  const hung = https.get({
    host: '127.0.0.1',
    port: gh.port,
    ca: ca.caPem,
    servername: 'app.test',
    path: '/hang',
    headers: { host: 'app.test' },
    agent: false,
  });
  hung.on('error', () => {});
  await hanging;
  hung.destroy();
  const fast = await get(gh.port, '/fast');
  assert.equal(fast.status, 200);
  assert.equal(fast.body, 'fast');
  assert.deepEqual(closedUpstream, ['hang'], 'the upstream saw the abandoned exchange cut');
  assert.equal(backend.connections(), 2, 'the cut connection was replaced by a new one');
});

test('https:// upstream: verified against the group CA, SNI = its host name; an unknown CA is 502', async (t) => {
  const upstreamCa = createTestCa(undefined, 'Upstream Test CA');
  const upstreamCert = upstreamCa.issue(['localhost']);
  const servernames: (string | false | null)[] = [];
  const app = new Hono();
  app.get('/', (c) => c.text('over tls'));
  const server = serve({
    fetch: app.fetch,
    port: 0,
    hostname: '127.0.0.1',
    createServer: https.createServer,
    serverOptions: {
      cert: upstreamCert.certPem,
      key: fs.readFileSync(upstreamCert.keyFile),
    },
  }) as https.Server;
  server.on('secureConnection', (socket: import('node:tls').TLSSocket) => servernames.push(socket.servername));
  await once(server, 'listening');
  t.after(() => new Promise<void>((resolve) => server.close(() => resolve())));
  const port = (server.address() as AddressInfo).port;
  const caFile = path.join(upstreamCa.dir, 'upstream-ca.pem');
  fs.writeFileSync(caFile, upstreamCa.caPem);
  const other = ca.issue(['other.test']);
  const gh = await startGatehouse(t, {
    sites: {
      app: groupSiteToml(cert, `https://localhost:${port}`, `ca = ${JSON.stringify(caFile)}`),
      other: siteToml(['other.test'], other, `https://localhost:${port}`),
    },
  });
  const reply = await get(gh.port, '/');
  assert.equal(reply.status, 200);
  assert.equal(reply.body, 'over tls');
  assert.deepEqual(servernames, ['localhost']);

  const untrusted = await request(gh.port, {
    ca: ca.caPem,
    servername: 'other.test',
    path: '/',
    headers: { accept: 'application/json' },
  });
  assert.equal(untrusted.status, 502, 'a certificate from a CA the group does not trust is refused');
});

test('connect_timeout covers the TLS handshake of an https:// upstream that accepts and then says nothing: 504', async (t) => {
  const silent = await listen(
    t,
    net.createServer((socket) => socket.on('error', () => {})),
  );
  const port = new URL(silent.url).port;
  const gh = await startGatehouse(t, {
    sites: { app: siteToml(['app.test'], cert, `https://127.0.0.1:${port}`, '', 'connect_timeout = "500ms"') },
  });
  const reply = await get(gh.port, '/', { ca: ca.caPem, headers: { accept: 'application/json' } });
  assert.equal(reply.status, 504);
  assert.equal(JSON.parse(reply.body).error, 'ERR_UPSTREAM_TIMEOUT');
  await gh.logLine((line) => line.error === 'ERR_UPSTREAM_TIMEOUT', 'the access log names the timeout');
});

// Bodies with a Content-Length of a read (READ_SIZE) or more are relayed by the connection itself, from its read buffers,
// without llhttp's copy per read (upstream-connection.ts); the tests below hold that path to the same rules.

/** The SHA-256 and length of what a response stream carries; `slow` yields to the event loop after every chunk. */
async function digest(stream: NodeJS.ReadableStream & { pause(): void; resume(): void }, slow = false) {
  const hash = createHash('sha256');
  let length = 0;
  stream.on('data', (chunk: Buffer) => {
    hash.update(chunk);
    length += chunk.length;
    if (slow) {
      stream.pause();
      setImmediate(() => stream.resume());
    }
  });
  await once(stream, 'end');
  return { sha256: hash.digest('hex'), length };
}

function h1Get(port: number, path: string): Promise<http.IncomingMessage> {
  const req = https.get({
    host: '127.0.0.1',
    port,
    ca: ca.caPem,
    servername: 'app.test',
    path,
    headers: { host: 'app.test' },
    agent: false,
  });
  return once(req, 'response').then(([res]) => res as http.IncomingMessage);
}

test('a 50 MB Content-Length body arrives byte-exact (SHA-256) over HTTP/1.1 and HTTP/2, a slow reader too; from Express, Hono and an https:// upstream', async (t) => {
  const body = randomBytes(50 * 1024 * 1024);
  const expected = { sha256: createHash('sha256').update(body).digest('hex'), length: body.length };
  const file = path.join(ca.dir, 'fifty.bin');
  fs.writeFileSync(file, body);
  const app = express();
  app.get('/file', (_req, res) => res.sendFile(file));
  const backend = await listen(t, http.createServer(app));
  const hono = new Hono();
  hono.get('/buffer', (c) =>
    c.body(body.subarray(0, 8 * 1024 * 1024), 200, { 'content-type': 'application/octet-stream' }),
  );
  const upstreamCa = createTestCa(undefined, 'Upstream Test CA');
  const upstreamCert = upstreamCa.issue(['localhost']);
  const tlsServer = serve({
    fetch: hono.fetch,
    port: 0,
    hostname: '127.0.0.1',
    createServer: https.createServer,
    serverOptions: { cert: upstreamCert.certPem, key: fs.readFileSync(upstreamCert.keyFile) },
  }) as https.Server;
  await once(tlsServer, 'listening');
  t.after(() => new Promise<void>((resolve) => tlsServer.close(() => resolve())));
  const caFile = path.join(upstreamCa.dir, 'upstream-ca.pem');
  fs.writeFileSync(caFile, upstreamCa.caPem);
  const gh = await startGatehouse(t, {
    sites: {
      app: groupSiteToml(
        cert,
        backend.url,
        '',
        `[upstreams.tls]\nservers = ["https://localhost:${(tlsServer.address() as AddressInfo).port}"]\nca = ${JSON.stringify(caFile)}\n[[routes]]\npath = "/buffer"\nupstream = "tls"`,
      ),
    },
  });

  const h1 = await h1Get(gh.port, '/file');
  assert.equal(h1.headers['content-length'], String(body.length));
  assert.deepEqual(await digest(h1), expected, 'HTTP/1.1');

  const session = http2.connect(`https://127.0.0.1:${gh.port}`, { ca: ca.caPem, servername: 'app.test' });
  t.after(() => session.close());
  const fast = session.request({ ':path': '/file', ':authority': 'app.test' });
  const slow = session.request({ ':path': '/file', ':authority': 'app.test' });
  const [fastDigest, slowDigest] = await Promise.all([digest(fast), digest(slow, true)]);
  assert.deepEqual(fastDigest, expected, 'HTTP/2');
  assert.deepEqual(slowDigest, expected, 'HTTP/2, a reader that lets the writes queue up');

  const overTls = await h1Get(gh.port, '/buffer');
  assert.deepEqual(
    await digest(overTls, true),
    {
      sha256: createHash('sha256')
        .update(body.subarray(0, 8 * 1024 * 1024))
        .digest('hex'),
      length: 8 * 1024 * 1024,
    },
    'from an https:// upstream (TLS reads of 16 KiB records)',
  );
  assert.equal(backend.connections(), 2, 'the first exchange left its connection to one of the two concurrent ones');
});

test('bodies at the edge of a read (64 KiB and READ_SIZE, each ± 1; 1 MB) from Express, each followed by the next on the same connection', async (t) => {
  const sizes = [65_535, 65_536, 65_537, READ_SIZE - 1, READ_SIZE, READ_SIZE + 1, 1_000_000, 10];
  const app = express();
  app.get('/size/:n', (req, res) => {
    res.send(Buffer.alloc(Number(req.params.n), Number(req.params.n) % 251));
  });
  const backend = await listen(t, http.createServer(app));
  const gh = await startGatehouse(t, { sites: { app: siteToml(['app.test'], cert, backend.url) } });
  for (const size of sizes) {
    const res = await h1Get(gh.port, `/size/${size}`);
    const expected = createHash('sha256')
      .update(Buffer.alloc(size, size % 251))
      .digest('hex');
    assert.deepEqual(await digest(res), { sha256: expected, length: size }, `${size} bytes`);
  }
  assert.equal(backend.connections(), 1);
});

test('response smuggling past a large Content-Length body: the client gets the announced bytes only, the connection is dropped', async (t) => {
  const big = READ_SIZE + 100_000;
  const payload = Buffer.alloc(big, 'b');
  let strayClosed: Promise<unknown> = Promise.resolve();
  const smuggled = 'HTTP/1.1 200 OK\r\nContent-Length: 8\r\n\r\nsmuggled';
  const upstream = await rawUpstream(t, (head, socket, index) => {
    const answer = Buffer.concat([Buffer.from(`HTTP/1.1 200 OK\r\nContent-Length: ${big}\r\n\r\n`), payload]);
    if (head.startsWith('GET /same-write')) socket.write(Buffer.concat([answer, Buffer.from(smuggled)]));
    else if (head.startsWith('GET /later')) {
      strayClosed = once(socket, 'close');
      socket.write(answer);
      setImmediate(() => socket.write(smuggled));
    } else socket.write(`HTTP/1.1 200 OK\r\nContent-Length: 6\r\n\r\nreal-${index % 10}`);
  });
  const gh = await startGatehouse(t, { sites: { app: siteToml(['app.test'], cert, upstream.url) } });

  const sameWrite = await get(gh.port, '/same-write');
  assert.equal(sameWrite.body, payload.toString(), 'exactly the announced bytes');
  assert.match((await get(gh.port, '/next')).body, /^real-\d$/);
  assert.equal(upstream.connections(), 2, 'the connection that carried the stray bytes was dropped');
  assert.equal((await get(gh.port, '/later')).body, payload.toString());
  await strayClosed;
  for (let i = 0; i < 3; i++) assert.match((await get(gh.port, '/next')).body, /^real-\d$/);
  assert.equal(upstream.connections(), 3);
});

test('an upstream that closes in the middle of a large Content-Length body: a broken response over HTTP/1.1 and HTTP/2', async (t) => {
  const upstream = await rawUpstream(t, (_head, socket) => {
    socket.write('HTTP/1.1 200 OK\r\nContent-Length: 1000000\r\n\r\n');
    // Several reads' worth of the body, then the close.
    socket.end(Buffer.alloc(300_000, 'x'));
  });
  const gh = await startGatehouse(t, { sites: { app: siteToml(['app.test'], cert, upstream.url) } });
  const outcome = await get(gh.port, '/').then(
    (reply) => `complete: ${reply.body.length} bytes`,
    (error: NodeJS.ErrnoException) => `broken: ${error.code}`,
  );
  assert.match(outcome, /^broken: /, outcome);
  const session = http2.connect(`https://127.0.0.1:${gh.port}`, { ca: ca.caPem, servername: 'app.test' });
  t.after(() => session.close());
  const stream = session.request({ ':path': '/', ':authority': 'app.test' });
  stream.resume();
  stream.on('error', () => {});
  await new Promise((resolve) => stream.on('close', resolve));
  assert.notEqual(stream.rstCode, http2.constants.NGHTTP2_NO_ERROR, 'the HTTP/2 stream is reset, not ended');
});

test('HEAD and 304 announce a large Content-Length and carry no body: the connection serves the next request', async (t) => {
  const upstream = await rawUpstream(t, (head, socket) => {
    if (head.startsWith('HEAD ')) socket.write('HTTP/1.1 200 OK\r\nContent-Length: 5000000\r\n\r\n');
    else if (head.startsWith('GET /etag')) socket.write('HTTP/1.1 304 Not Modified\r\nContent-Length: 5000000\r\n\r\n');
    else socket.write('HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\nnext');
  });
  const gh = await startGatehouse(t, { sites: { app: siteToml(['app.test'], cert, upstream.url) } });
  const head = await get(gh.port, '/big', { ca: ca.caPem, method: 'HEAD' });
  assert.equal(head.status, 200);
  assert.equal(head.headers['content-length'], '5000000');
  assert.equal(head.body, '');
  assert.equal((await get(gh.port, '/next')).body, 'next');
  const notModified = await get(gh.port, '/etag');
  assert.equal(notModified.status, 304);
  assert.equal(notModified.body, '');
  assert.equal((await get(gh.port, '/next')).body, 'next');
  assert.equal(upstream.connections(), 1);
});

test('a client that leaves in the middle of a large body frees its upstream connection at once (keepalive = 1)', async (t) => {
  let upstreamClosed: () => void;
  const closed = new Promise<void>((resolve) => (upstreamClosed = resolve));
  const app = express();
  app.get('/big', (req, res) => {
    req.socket.once('close', () => upstreamClosed());
    res.set('content-length', String(100 * 1024 * 1024));
    const piece = Buffer.alloc(64 * 1024, 'y');
    const pump = () => {
      while (res.write(piece));
      res.once('drain', pump);
    };
    pump();
  });
  app.get('/fast', (_req, res) => {
    res.send('fast');
  });
  const backend = await listen(t, http.createServer(app));
  const gh = await startGatehouse(t, {
    sites: { app: groupSiteToml(cert, backend.url, 'keepalive = 1\nmax_pending = 4') },
  });
  const res = await h1Get(gh.port, '/big');
  await once(res, 'data');
  res.destroy();
  await closed;
  const fast = await get(gh.port, '/fast');
  assert.equal(fast.body, 'fast');
  assert.equal(backend.connections(), 2, 'the connection of the abandoned body was cut and replaced');
});

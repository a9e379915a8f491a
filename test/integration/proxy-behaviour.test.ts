// Limits, timeouts, streaming and failover, each observed with real sockets (no timing assertions).
import assert from 'node:assert/strict';
import https from 'node:https';
import http2 from 'node:http2';
import { once } from 'node:events';
import { test } from 'node:test';
import { readAll, refusedPort, startBackend } from '../harness/backend.ts';
import { request } from '../harness/clients.ts';
import { siteToml, startGatehouse } from '../harness/gatehouse.ts';
import { createTestCa } from '../harness/pki.ts';

const ca = createTestCa();
const cert = ca.issue(['app.test']);

test('413 before the body is read when Content-Length is too large; the upstream never sees the request', async (t) => {
  const backend = await startBackend(t, (req, res) => req.resume().on('end', () => res.end('got it')));
  const gh = await startGatehouse(t, {
    sites: { app: siteToml(['app.test'], cert, backend.url, '', 'max_body_size = "1k"') },
  });
  const small = await request(gh.port, {
    ca: ca.caPem,
    servername: 'app.test',
    method: 'POST',
    body: 'x'.repeat(1024),
  });
  assert.equal(small.status, 200);
  const big = await request(gh.port, {
    ca: ca.caPem,
    servername: 'app.test',
    method: 'POST',
    body: 'x'.repeat(1025),
    headers: { accept: 'application/json' },
  });
  assert.equal(big.status, 413);
  assert.equal(JSON.parse(big.body).error, 'ERR_BODY_TOO_LARGE');
  assert.equal(big.headers.connection, 'close');
  assert.equal(backend.requests.length, 1, 'only the small request reached the upstream');
});

test('a chunked body that grows past max_body_size is cut off with 413 and never delivered whole upstream', async (t) => {
  let completeBodies = 0;
  const backend = await startBackend(t, (req, res) =>
    req.resume().on('end', () => {
      completeBodies++;
      res.end('complete');
    }),
  );
  const gh = await startGatehouse(t, {
    sites: { app: siteToml(['app.test'], cert, backend.url, '', 'max_body_size = "4k"') },
  });
  const send = async (kilobytes: number) => {
    const req = https.request({
      host: '127.0.0.1',
      port: gh.port,
      servername: 'app.test',
      ca: ca.caPem,
      method: 'POST',
      path: '/',
      headers: { host: 'app.test', 'transfer-encoding': 'chunked' },
    });
    const response = once(req, 'response') as Promise<[import('node:http').IncomingMessage]>;
    req.on('error', () => {});
    for (let i = 0; i < kilobytes; i++) req.write('y'.repeat(1024));
    req.end();
    const [res] = await response;
    return { status: res.statusCode, body: await readAll(res) };
  };
  assert.deepEqual(await send(4), { status: 200, body: 'complete' });
  const cut = await send(8);
  assert.equal(cut.status, 413);
  // Whether the upstream saw the start of it or nothing at all, it never received the oversized body whole.
  assert.equal(completeBodies, 1);
});

test('request bodies stream to the upstream unbuffered; request_buffering = true delivers them whole with a length', async (t) => {
  let firstChunk: (text: string) => void;
  const gotFirstChunk = new Promise<string>((resolve) => {
    firstChunk = resolve;
  });
  const backend = await startBackend(t, (req, res) => {
    let body = '';
    req.setEncoding('utf8');
    req.on('data', (chunk: string) => {
      if (!body) firstChunk(chunk);
      body += chunk;
    });
    req.on('end', () =>
      res.end(
        JSON.stringify({
          body,
          length: req.headers['content-length'] ?? null,
          te: req.headers['transfer-encoding'] ?? null,
        }),
      ),
    );
  });
  const gh = await startGatehouse(t, {
    sites: {
      app:
        siteToml(['app.test'], cert, backend.url, '', 'request_buffering = false') +
        `\n[[routes]]\npath = "/buffered"\nupstream = "${backend.url}"\nrequest_buffering = true\n`,
    },
  });
  const req = https.request({
    host: '127.0.0.1',
    port: gh.port,
    servername: 'app.test',
    ca: ca.caPem,
    method: 'POST',
    path: '/',
    headers: { host: 'app.test' },
  });
  const response = once(req, 'response') as Promise<[import('node:http').IncomingMessage]>;
  req.write('first;');
  // The upstream has the first chunk while the client has not finished sending: nothing buffers the body.
  assert.equal(await gotFirstChunk, 'first;');
  req.end('second');
  const [res] = await response;
  assert.deepEqual(JSON.parse(await readAll(res)), { body: 'first;second', length: null, te: 'chunked' });

  const buffered = await request(gh.port, {
    ca: ca.caPem,
    servername: 'app.test',
    method: 'POST',
    path: '/buffered',
    headers: { 'transfer-encoding': 'chunked' },
    body: 'all at once',
  });
  assert.deepEqual(JSON.parse(buffered.body), { body: 'all at once', length: '11', te: null });
});

test('response streaming: the first chunk of a slow upstream (server-sent events) reaches the client before the upstream finishes', async (t) => {
  let finish!: () => void;
  const mayFinish = new Promise<void>((resolve) => {
    finish = resolve;
  });
  const backend = await startBackend(t, (_req, res) => {
    res.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-cache' });
    res.write('data: one\n\n');
    void mayFinish.then(() => res.end('data: two\n\n'));
  });
  const gh = await startGatehouse(t, { sites: { app: siteToml(['app.test'], cert, backend.url) } });
  for (const protocol of ['http/1.1', 'h2'] as const) {
    const chunks: string[] = [];
    let stream: NodeJS.ReadableStream;
    let close = () => {};
    if (protocol === 'h2') {
      const session = http2.connect(`https://127.0.0.1:${gh.port}`, { ca: ca.caPem, servername: 'app.test' });
      stream = session.request({ ':path': '/events', ':authority': 'app.test' });
      close = () => session.close();
    } else {
      const req = https.get({
        host: '127.0.0.1',
        port: gh.port,
        servername: 'app.test',
        ca: ca.caPem,
        path: '/events',
        headers: { host: 'app.test' },
      });
      [stream] = (await once(req, 'response')) as [import('node:http').IncomingMessage];
    }
    stream.setEncoding('utf8');
    const [first] = (await once(stream, 'data')) as [string];
    chunks.push(first);
    assert.equal(chunks[0], 'data: one\n\n', `${protocol}: first event arrives while the upstream is still open`);
    finish();
    chunks.push(await readAll(stream));
    assert.equal(chunks.join(''), 'data: one\n\ndata: two\n\n');
    close();
  }
});

test('502 when the upstream refuses, 504 when it does not answer within read_timeout, 502 when it resets', async (t) => {
  const refused = await refusedPort();
  const silent = await startBackend(t, () => {
    /* never answers */
  });
  const resetting = await startBackend(t, (req) => req.socket.destroy());
  const gh = await startGatehouse(t, {
    sites: {
      app:
        siteToml(['app.test'], cert, `http://127.0.0.1:${refused}`) +
        `\n[[routes]]\npath = "/silent"\nupstream = "${silent.url}"\nread_timeout = "300ms"\n` +
        `\n[[routes]]\npath = "/reset"\nupstream = "${resetting.url}"\n`,
    },
  });
  const json = { accept: 'application/json' };
  const r502 = await request(gh.port, { ca: ca.caPem, servername: 'app.test', headers: json });
  assert.equal(r502.status, 502);
  assert.equal(JSON.parse(r502.body).error, 'ERR_UPSTREAM_UNREACHABLE');
  const r504 = await request(gh.port, { ca: ca.caPem, servername: 'app.test', path: '/silent', headers: json });
  assert.equal(r504.status, 504);
  assert.equal(JSON.parse(r504.body).error, 'ERR_UPSTREAM_TIMEOUT');
  assert.equal(silent.requests.length, 1, 'the request did reach the silent upstream');
  const reset = await request(gh.port, { ca: ca.caPem, servername: 'app.test', path: '/reset', headers: json });
  assert.equal(reset.status, 502);
  assert.equal(JSON.parse(reset.body).error, 'ERR_UPSTREAM_RESET');
  // Each error page carries a request id that matches a warn-level log line with the cause.
  for (const reply of [r502, r504, reset]) {
    const id = JSON.parse(reply.body).request_id as string;
    await gh.logLine((line) => line.req_id === id && line.level === 40 && typeof line.cause === 'string', id);
  }
  // The browser form of the same error is an HTML page with the id.
  const html = await request(gh.port, { ca: ca.caPem, servername: 'app.test', headers: { accept: 'text/html' } });
  assert.match(String(html.headers['content-type']), /text\/html/);
  assert.match(html.body, new RegExp(`Request id: <code>${String(html.headers['x-request-id'])}</code>`));
});

test('round-robin over an upstream group; a refused server is skipped and idempotent requests go to the next one', async (t) => {
  const hits: string[] = [];
  const one = await startBackend(t, (_req, res) => {
    hits.push('one');
    res.end('one');
  });
  const two = await startBackend(t, (_req, res) => {
    hits.push('two');
    res.end('two');
  });
  const dead = await refusedPort();
  const site = (servers: string[]) => `server_names = ["app.test"]
[tls]
cert = "${cert.certFile}"
key = "${cert.keyFile}"
[upstreams.pool]
servers = ${JSON.stringify(servers)}
[[routes]]
path = "/"
upstream = "pool"
`;
  const gh = await startGatehouse(t, { sites: { app: site([one.url, two.url]) } });
  for (let i = 0; i < 4; i++) await request(gh.port, { ca: ca.caPem, servername: 'app.test' });
  assert.deepEqual(hits.sort(), ['one', 'one', 'two', 'two']);

  const failover = await startGatehouse(t, { sites: { app: site([`http://127.0.0.1:${dead}`, one.url]) } });
  hits.length = 0;
  for (let i = 0; i < 4; i++)
    assert.equal((await request(failover.port, { ca: ca.caPem, servername: 'app.test' })).body, 'one');
  // A POST with a streamed body is not replayed: if it meets the dead server first it fails, never duplicates.
  const posts = await Promise.all(
    [0, 1].map(() => request(failover.port, { ca: ca.caPem, servername: 'app.test', method: 'POST', body: 'x' })),
  );
  assert.ok(posts.every((p) => p.status === 200 || p.status === 502));
  assert.equal(hits.length, 4 + posts.filter((p) => p.status === 200).length);
});

test('a client that goes away mid-response aborts the upstream request', async (t) => {
  let upstreamClosed!: Promise<unknown>;
  const backend = await startBackend(t, (_req, res) => {
    upstreamClosed = once(res, 'close');
    res.writeHead(200, { 'content-type': 'text/plain' });
    res.write('partial');
  });
  const gh = await startGatehouse(t, { sites: { app: siteToml(['app.test'], cert, backend.url) } });
  const req = https.get({
    host: '127.0.0.1',
    port: gh.port,
    servername: 'app.test',
    ca: ca.caPem,
    headers: { host: 'app.test' },
  });
  const [res] = (await once(req, 'response')) as [import('node:http').IncomingMessage];
  await once(res, 'data');
  req.destroy();
  await upstreamClosed;
  assert.equal(backend.requests.length, 1);
});

test('HTTP/2 clients: request bodies are forwarded, HEAD has no body, and many streams share one session', async (t) => {
  const backend = await startBackend(t, (req, res) => {
    let body = '';
    req
      .setEncoding('utf8')
      .on('data', (chunk: string) => {
        body += chunk;
      })
      .on('end', () => res.end(`${req.method} ${req.url} ${body}`));
  });
  const gh = await startGatehouse(t, { sites: { app: siteToml(['app.test'], cert, backend.url) } });
  const session = http2.connect(`https://127.0.0.1:${gh.port}`, { ca: ca.caPem, servername: 'app.test' });
  t.after(() => session.close());
  const send = (method: string, path: string, body?: string) =>
    new Promise<{ status: number; text: string }>((resolve, reject) => {
      const stream = session.request(
        { ':method': method, ':path': path, ':authority': 'app.test' },
        { endStream: body === undefined },
      );
      let status = 0;
      stream.on('response', (headers) => {
        status = Number(headers[':status']);
      });
      if (body !== undefined) stream.end(body);
      readAll(stream).then((text) => resolve({ status, text }), reject);
    });
  assert.deepEqual(await send('POST', '/upload', 'payload'), { status: 200, text: 'POST /upload payload' });
  assert.deepEqual(await send('HEAD', '/x'), { status: 200, text: '' });
  const many = await Promise.all(Array.from({ length: 20 }, (_, i) => send('GET', `/n/${i}`)));
  assert.deepEqual(
    many.map((r) => r.text),
    Array.from({ length: 20 }, (_, i) => `GET /n/${i} `),
  );
});

test('send_timeout: a client that stops reading has its response cut and the upstream request aborted', async (t) => {
  let upstreamClosed!: Promise<unknown>;
  const backend = await startBackend(t, (_req, res) => {
    upstreamClosed = once(res, 'close');
    res.writeHead(200, { 'content-type': 'application/octet-stream' });
    const chunk = Buffer.alloc(64 * 1024);
    // Write until the socket stops taking data, then keep offering more whenever it drains.
    const pump = () => {
      while (res.write(chunk)) {
        /* fill */
      }
    };
    res.on('drain', pump);
    pump();
  });
  const gh = await startGatehouse(t, {
    sites: { app: siteToml(['app.test'], cert, backend.url, '', 'send_timeout = "300ms"') },
  });
  const req = https.get({
    host: '127.0.0.1',
    port: gh.port,
    servername: 'app.test',
    ca: ca.caPem,
    headers: { host: 'app.test' },
  });
  const [res] = (await once(req, 'response')) as [import('node:http').IncomingMessage];
  res.pause(); // never read: buffers fill up, Gatehouse pauses the upstream, then gives up after send_timeout
  const cut = new Promise<Error>((resolve) => res.once('error', resolve));
  await upstreamClosed;
  // Reading again, the client drains what was buffered and then finds the connection cut.
  res.resume();
  assert.equal((await cut).message, 'aborted', 'the client sees the response cut, not one that looks complete');
  assert.equal(res.complete, false);
  await gh.logLine(
    (line) => line.msg === 'request' && typeof line.cause === 'string' && /send_timeout/.test(line.cause),
    'the cut is logged with its reason',
  );
});

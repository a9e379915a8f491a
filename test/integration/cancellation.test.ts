// A client that goes away (HTTP/2 RST_STREAM, a closed HTTP/1.1 connection) ends its upstream exchange at once:
// the pool is never held by requests nobody waits for, an unfinished request body never reaches the upstream as a
// finished one, the access log says 499, and the in-flight gauge counts the request until its exchange is over.
// Real TLS clients, a real Express 5 upstream and a node:http upstream that records what it saw.
import assert from 'node:assert/strict';
import { once } from 'node:events';
import type { Server } from 'node:http';
import http2 from 'node:http2';
import https from 'node:https';
import type { AddressInfo } from 'node:net';
import { test } from 'node:test';
import express from 'express';
import { readAll } from '../harness/backend.ts';
import { getHeaders, rawSession, rstStream } from '../harness/h2-frames.ts';
import { sample, scrape } from '../harness/metrics.ts';
import { groupSiteToml, startGatehouse, type TestGatehouse } from '../harness/gatehouse.ts';
import { connectH2, get2 } from '../harness/clients.ts';
import { createTestCa } from '../harness/pki.ts';
import { startRecorder } from '../harness/recorder.ts';
import { within } from '../harness/wait.ts';

const ca = createTestCa();
const cert = ca.issue(['app.test']);
const { NGHTTP2_CANCEL } = http2.constants;

const accessLine = (gh: TestGatehouse, path: string) =>
  gh.logLine((l) => l.msg === 'request' && l.path === path, `access log line for ${path}`);

test('HTTP/2 resets free upstream connections: 10 event streams cancelled with keepalive = 4, the site still answers and Express saw each one closed', async (t) => {
  const app = express();
  const closed = new Map<string, () => void>();
  const closedEvents = (n: string) => new Promise<void>((resolve) => closed.set(n, resolve));
  app.get('/events/:n', (req, res) => {
    res.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-cache' });
    res.write(`data: ${req.params.n}\n\n`);
    res.on('close', () => closed.get(req.params.n)?.());
  });
  app.get('/ping', (_req, res) => {
    res.send('pong');
  });
  const server: Server = app.listen(0, '127.0.0.1');
  await once(server, 'listening');
  t.after(() => {
    server.closeAllConnections();
    server.close();
  });
  const gh = await startGatehouse(t, {
    sites: { app: groupSiteToml(cert, `http://127.0.0.1:${(server.address() as AddressInfo).port}`, 'keepalive = 4') },
  });

  const session = connectH2(t, gh.port, ca.caPem);
  for (let i = 1; i <= 10; i++) {
    const upstreamClosed = closedEvents(String(i));
    const stream = session.request({ ':path': `/events/${i}`, ':authority': 'app.test' });
    stream.on('error', () => {});
    const [first] = await within(
      once(stream, 'data') as Promise<[Buffer]>,
      `event stream ${i} (keepalive = 4) sends its first event`,
    );
    assert.equal(String(first), `data: ${i}\n\n`);
    stream.close(NGHTTP2_CANCEL);
    await within(upstreamClosed, `Express sees event stream ${i} closed after the client's RST_STREAM`);
  }
  assert.deepEqual(await within(get2(connectH2(t, gh.port, ca.caPem), '/ping'), 'a fresh request after the cancels'), {
    status: 200,
    body: 'pong',
  });
  assert.equal(
    (await accessLine(gh, '/events/1')).status,
    200,
    'a cancelled response that had started keeps its status',
  );
  assert.equal((await accessLine(gh, '/events/1')).aborted, true);
});

test('an upstream that does not answer: requests cancelled over HTTP/2 and HTTP/1.1 (more than keepalive) are aborted upstream at once', async (t) => {
  const upstream = await startRecorder(t, (seen) => (seen.url === '/fresh' ? 'fresh' : 'hang'));
  const gh = await startGatehouse(t, {
    sites: { app: groupSiteToml(cert, upstream.url, 'keepalive = 2', 'read_timeout = "5m"') },
  });
  const session = connectH2(t, gh.port, ca.caPem);
  for (let i = 1; i <= 5; i++) {
    const stream = session.request({ ':path': `/h2/${i}`, ':authority': 'app.test' });
    stream.on('error', () => {});
    const seen = await upstream.request(`/h2/${i}`);
    stream.close(NGHTTP2_CANCEL);
    assert.equal(await within(seen.responseEnded, `the upstream sees /h2/${i} aborted`), 'aborted');
  }
  for (let i = 1; i <= 3; i++) {
    const req = https.get({
      host: '127.0.0.1',
      port: gh.port,
      servername: 'app.test',
      ca: ca.caPem,
      path: `/h1/${i}`,
      headers: { host: 'app.test' },
      agent: false,
    });
    req.on('error', () => {});
    const seen = await upstream.request(`/h1/${i}`);
    req.destroy();
    assert.equal(await within(seen.responseEnded, `the upstream sees /h1/${i} aborted`), 'aborted');
  }
  assert.deepEqual(await within(get2(session, '/fresh'), 'a fresh request after the cancels'), {
    status: 200,
    body: 'fresh',
  });
  const line = await accessLine(gh, '/h2/1');
  assert.equal(
    line.status,
    499,
    'a request whose client left before the response started is logged 499 (nginx: client closed request)',
  );
  assert.equal(line.aborted, true);
  assert.equal((await accessLine(gh, '/h1/1')).status, 499);
});

test('requests reset in the same packet as their HEADERS never reach the upstream and hold no connection', async (t) => {
  const upstream = await startRecorder(t, (seen) => (seen.url === '/' ? 'fresh' : 'hang'));
  const gh = await startGatehouse(t, {
    sites: { app: groupSiteToml(cert, upstream.url, 'keepalive = 2', 'read_timeout = "5m"') },
  });
  // Two requests first, so both upstream connections are open and idle: a request given one is written at once.
  const session = connectH2(t, gh.port, ca.caPem);
  assert.deepEqual(await Promise.all([get2(session, '/'), get2(session, '/')]), [
    { status: 200, body: 'fresh' },
    { status: 200, body: 'fresh' },
  ]);
  const raw = await rawSession(gh.port, { ca: ca.caPem, servername: 'app.test' });
  t.after(() => raw.close());
  // Ten GET / + RST_STREAM pairs in one write (the rapid-reset pattern), more than the two connections of the group.
  raw.send(
    ...Array.from({ length: 10 }, (_, i) =>
      Buffer.concat([getHeaders(2 * i + 1, 'app.test'), rstStream(2 * i + 1, NGHTTP2_CANCEL)]),
    ),
  );
  await gh.logLine(
    () => gh.logs.filter((l) => l.msg === 'request' && l.status === 499).length === 10,
    'ten access lines with 499',
  );
  assert.deepEqual(await within(get2(session, '/'), 'a fresh request after the resets'), {
    status: 200,
    body: 'fresh',
  });
  assert.equal(upstream.seen.length, 3, 'none of the reset requests reached the upstream');
  assert.equal(upstream.openConnections() <= 2, true);
});

test('a request body that does not arrive whole never reaches the upstream whole (HTTP/2 resets, HTTP/1.1 closed connections)', async (t) => {
  // Answers a complete body, except on /hang-* (so an aborted exchange is always visible as such).
  const upstream = await startRecorder(t, (seen) =>
    seen.url.startsWith('/hang') ? 'hang' : () => `got ${seen.body.length}`,
  );
  const gh = await startGatehouse(t, {
    sites: {
      app: groupSiteToml(
        cert,
        upstream.url,
        '',
        `
[[routes]]
path = "/buffered"
upstream = "app"
request_buffering = true
`,
      ),
    },
  });
  const session = connectH2(t, gh.port, ca.caPem);
  const put2 = (path: string, headers: Record<string, string> = {}) => {
    const stream = session.request({ ':method': 'PUT', ':path': path, ':authority': 'app.test', ...headers });
    stream.on('error', () => {});
    return stream;
  };
  const written = (stream: http2.ClientHttp2Stream, data: string | Buffer) =>
    new Promise((resolve) => stream.write(data, resolve));
  // More than the 64 KiB flow-control window Gatehouse grants a stream: the client still holds some of it when it resets,
  // so the reset cuts the body off (a browser cancelling an upload). With nothing left to send, node:http2's close()
  // sends END_STREAM before RST_STREAM, which makes a complete body followed by a cancel.
  const rest = Buffer.alloc(256 * 1024, 'x');

  // HTTP/2, no content-length (chunked upstream): `hello` arrives, then the client resets mid-upload.
  const chunked = put2('/h2-chunked');
  await written(chunked, 'hello');
  const seenChunked = await upstream.request('/h2-chunked');
  await within(seenChunked.received(5), 'the upstream gets the first bytes while the client still sends');
  chunked.write(rest);
  chunked.close(NGHTTP2_CANCEL);
  assert.equal(
    await within(seenChunked.bodyEnded, 'the upstream body ends'),
    'aborted',
    'an HTTP/2 body reset mid-upload is never a complete body upstream',
  );
  assert.equal((await accessLine(gh, '/h2-chunked')).status, 499);

  // HTTP/2, content-length: 5, `hel`, then RST_STREAM (node:http2 sends END_STREAM first: nghttp2 refuses the short body).
  const partial = put2('/h2-length', { 'content-length': '5' });
  await written(partial, 'hel');
  const seenPartial = await upstream.request('/h2-length');
  await within(seenPartial.received(3), 'the upstream gets the first bytes');
  partial.close(NGHTTP2_CANCEL);
  assert.equal(await within(seenPartial.bodyEnded, 'the upstream body ends'), 'aborted');

  // HTTP/2, content-length: 5, reset at once.
  put2('/h2-at-once', { 'content-length': '5' }).close(NGHTTP2_CANCEL);
  const atOnce = await accessLine(gh, '/h2-at-once');
  assert.equal(atOnce.status, 499, 'logged as a client abort, not 200');
  // Logged once Gatehouse is done with it: by then the request was either never sent (no upstream in the line) or cut off.
  if (atOnce.upstream)
    assert.equal(
      await within((await upstream.request('/h2-at-once')).bodyEnded, 'the upstream body ends'),
      'aborted',
      'never a complete empty body',
    );

  // HTTP/2, `hello` then close(NGHTTP2_CANCEL): on the wire a complete body, then a cancel. Whether or not the body's
  // end was forwarded before the reset arrived, the exchange is aborted at once and nobody waits for its answer.
  const cancelled = put2('/hang-cancelled');
  await written(cancelled, 'hello');
  const seenCancelled = await upstream.request('/hang-cancelled');
  await within(seenCancelled.received(5), 'the upstream gets the body');
  cancelled.close(NGHTTP2_CANCEL);
  assert.equal(await within(seenCancelled.responseEnded, 'the upstream exchange ends'), 'aborted');
  assert.equal((await accessLine(gh, '/hang-cancelled')).status, 499);

  // request_buffering = true: a truncated body is never sent at all.
  const buffered = put2('/buffered/x');
  await written(buffered, 'hello');
  buffered.write(rest);
  buffered.close(NGHTTP2_CANCEL);
  assert.equal((await accessLine(gh, '/buffered/x')).status, 499);
  assert.equal(
    upstream.seen.some((s) => s.url === '/buffered/x'),
    false,
    'a buffered body the client did not finish is never forwarded',
  );

  // HTTP/1.1: content-length 5 and chunked, the connection closed mid-body.
  for (const [path, headers] of [
    ['/h1-length', { 'content-length': '5' }],
    ['/h1-chunked', { 'transfer-encoding': 'chunked' }],
  ] as const) {
    const req = https.request({
      host: '127.0.0.1',
      port: gh.port,
      servername: 'app.test',
      ca: ca.caPem,
      method: 'PUT',
      path,
      headers: { host: 'app.test', ...headers },
      agent: false,
    });
    req.on('error', () => {});
    req.write('hel');
    const seen = await upstream.request(path);
    await within(seen.received(3), `the upstream gets the first bytes of ${path}`);
    req.destroy();
    assert.equal(
      await within(seen.bodyEnded, 'the upstream body ends'),
      'aborted',
      `${path}: a closed connection is an aborted request upstream`,
    );
    assert.equal((await accessLine(gh, path)).status, 499);
  }

  // A body that does arrive whole still does, streamed and buffered.
  for (const path of ['/h2-whole', '/buffered/whole']) {
    const whole = put2(path, { 'content-length': '5' });
    whole.end('hello');
    const [headers] = (await once(whole, 'response')) as [http2.IncomingHttpHeaders];
    assert.equal(headers[':status'], 200);
    assert.equal(await readAll(whole), 'got 5', path);
  }
});

test('the in-flight gauge counts a hanging HTTP/2 request until its upstream exchange is over', async (t) => {
  const upstream = await startRecorder(t, () => 'hang');
  const gh = await startGatehouse(t, {
    main: '[metrics]\nlisten = "127.0.0.1:0"\n',
    sites: { app: groupSiteToml(cert, upstream.url, '', 'read_timeout = "5m"') },
  });
  const inFlight = async () => sample((await scrape(gh.metrics!.port)).body, 'gatehouse_requests_in_flight');
  const stream = connectH2(t, gh.port, ca.caPem).request({ ':path': '/hang', ':authority': 'app.test' });
  stream.on('error', () => {});
  const seen = await upstream.request('/hang');
  assert.equal(await inFlight(), 1, 'the request waiting for its upstream is in flight');
  stream.close(NGHTTP2_CANCEL);
  assert.equal(await within(seen.responseEnded, 'the upstream sees the exchange aborted'), 'aborted');
  await accessLine(gh, '/hang');
  assert.equal(await inFlight(), 0, 'once the exchange is over nothing is in flight');
});

test('body_timeout: a request body that stalls is cut with 408 (or a reset once the response started) and the upstream sees an abort', async (t) => {
  const upstream = await startRecorder(t, (seen) => {
    if (seen.url !== '/early') return 'ok';
    // Answers before reading the body, then waits for it.
    seen.res.writeHead(200, { 'content-type': 'text/plain' });
    seen.res.write('started');
    return 'hang';
  });
  const gh = await startGatehouse(t, { sites: { app: groupSiteToml(cert, upstream.url, '', 'body_timeout = "1s"') } });
  const session = connectH2(t, gh.port, ca.caPem);

  const slow = session.request({
    ':method': 'PUT',
    ':path': '/slow-h2',
    ':authority': 'app.test',
    accept: 'application/json',
  });
  slow.on('error', () => {});
  slow.write('hel');
  const [headers] = await within(
    once(slow, 'response') as Promise<[http2.IncomingHttpHeaders]>,
    'an answer to the stalled HTTP/2 body',
  );
  assert.equal(headers[':status'], 408);
  const reply = JSON.parse(await readAll(slow)) as { error: string; request_id: string };
  assert.equal(reply.error, 'ERR_BODY_TIMEOUT');
  const line = await gh.logLine(
    (l) => l.req_id === reply.request_id && l.msg === 'request',
    'the 408 in the access log',
  );
  assert.equal(line.error, 'ERR_BODY_TIMEOUT');
  assert.equal(await within((await upstream.request('/slow-h2')).bodyEnded, 'the upstream body ends'), 'aborted');

  const req = https.request({
    host: '127.0.0.1',
    port: gh.port,
    servername: 'app.test',
    ca: ca.caPem,
    method: 'PUT',
    path: '/slow-h1',
    headers: { host: 'app.test', 'content-length': '5' },
    agent: false,
  });
  req.on('error', () => {});
  req.write('hel');
  const [res] = await within(
    once(req, 'response') as Promise<[import('node:http').IncomingMessage]>,
    'an answer to the stalled HTTP/1.1 body',
  );
  assert.equal(res.statusCode, 408);
  assert.equal(res.headers.connection, 'close', 'the unread rest of the body is not drained from the connection');
  res.resume();
  assert.equal(await within((await upstream.request('/slow-h1')).bodyEnded, 'the upstream body ends'), 'aborted');

  // The upstream answered before the body stalled: the response is cut, not completed.
  const early = session.request({ ':method': 'PUT', ':path': '/early', ':authority': 'app.test' });
  early.on('error', () => {});
  early.write('hel');
  const [earlyHeaders] = (await once(early, 'response')) as [http2.IncomingHttpHeaders];
  assert.equal(earlyHeaders[':status'], 200);
  const cut = new Promise<number>((resolve) => early.on('close', () => resolve(early.rstCode ?? 0)));
  early.resume();
  assert.notEqual(
    await within(cut, 'the started response is cut'),
    http2.constants.NGHTTP2_NO_ERROR,
    'reset, not a response that looks complete',
  );
  assert.equal(await within((await upstream.request('/early')).bodyEnded, 'the upstream body ends'), 'aborted');
});

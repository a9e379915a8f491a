// A client that goes away (HTTP/2 RST_STREAM, a closed HTTP/1.1 connection) ends its upstream exchange at once:
// the pool is never held by requests nobody waits for, the access log says 499, and the in-flight gauge counts the
// request until its exchange is over.
// Real TLS clients, a real Express 5 upstream and a node:http upstream that records what it saw.
import assert from 'node:assert/strict';
import { once } from 'node:events';
import type { Server } from 'node:http';
import http2 from 'node:http2';
import https from 'node:https';
import type { AddressInfo } from 'node:net';
import { test } from 'node:test';
import express from 'express';
import { readAll } from '../helpers/backend.ts';
import { sample, scrape } from '../helpers/metrics.ts';
import { startGatehouse, type TestGatehouse } from '../helpers/gatehouse.ts';
import { createTestCa } from '../helpers/pki.ts';
import { startRecorder, within } from '../helpers/recorder.ts';

const ca = createTestCa();
const cert = ca.issue(['app.test']);
const { NGHTTP2_CANCEL } = http2.constants;

/** A site whose routes go to the [upstreams.app] group. */
function site(upstream: string, group = '', routes = ''): string {
  return `server_names = ["app.test"]
[tls]
cert = ${JSON.stringify(cert.certFile)}
key = ${JSON.stringify(cert.keyFile)}
[upstreams.app]
servers = ["${upstream}"]
${group}
[[routes]]
path = "/"
upstream = "app"
${routes}`;
}

function connect(t: import('node:test').TestContext, gh: TestGatehouse): http2.ClientHttp2Session {
  const session = http2.connect(`https://127.0.0.1:${gh.port}`, { ca: ca.caPem, servername: 'app.test' });
  session.on('error', () => {});
  t.after(() => session.destroy());
  return session;
}

async function get2(session: http2.ClientHttp2Session, path: string): Promise<{ status: number; body: string }> {
  const stream = session.request({ ':path': path, ':authority': 'app.test' });
  const [headers] = await once(stream, 'response') as [http2.IncomingHttpHeaders];
  return { status: Number(headers[':status']), body: await readAll(stream) };
}

const accessLine = (gh: TestGatehouse, path: string) => gh.logLine((l) => l.msg === 'request' && l.path === path, `access log line for ${path}`);

test('HTTP/2 resets free upstream connections: 10 event streams cancelled with keepalive = 4, the site still answers and Express saw each one closed', async (t) => {
  const app = express();
  const closed = new Map<string, () => void>();
  const closedEvents = (n: string) => new Promise<void>((resolve) => closed.set(n, resolve));
  app.get('/events/:n', (req, res) => {
    res.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-cache' });
    res.write(`data: ${req.params.n}\n\n`);
    res.on('close', () => closed.get(req.params.n)?.());
  });
  app.get('/ping', (_req, res) => { res.send('pong'); });
  const server: Server = app.listen(0, '127.0.0.1');
  await once(server, 'listening');
  t.after(() => { server.closeAllConnections(); server.close(); });
  const gh = await startGatehouse(t, { sites: { app: site(`http://127.0.0.1:${(server.address() as AddressInfo).port}`, 'keepalive = 4') } });

  const session = connect(t, gh);
  for (let i = 1; i <= 10; i++) {
    const upstreamClosed = closedEvents(String(i));
    const stream = session.request({ ':path': `/events/${i}`, ':authority': 'app.test' });
    stream.on('error', () => {});
    const [first] = await within(once(stream, 'data') as Promise<[Buffer]>, 10_000, `event stream ${i} (keepalive = 4) sends its first event`);
    assert.equal(String(first), `data: ${i}\n\n`);
    stream.close(NGHTTP2_CANCEL);
    await within(upstreamClosed, 10_000, `Express sees event stream ${i} closed after the client's RST_STREAM`);
  }
  assert.deepEqual(await within(get2(connect(t, gh), '/ping'), 10_000, 'a fresh request after the cancels'), { status: 200, body: 'pong' });
  assert.equal((await accessLine(gh, '/events/1')).status, 200, 'a cancelled response that had started keeps its status');
  assert.equal((await accessLine(gh, '/events/1')).aborted, true);
});

test('an upstream that does not answer: requests cancelled over HTTP/2 and HTTP/1.1 (more than keepalive) are aborted upstream at once', async (t) => {
  const upstream = await startRecorder(t, (seen) => (seen.url === '/fresh' ? 'fresh' : 'hang'));
  const gh = await startGatehouse(t, { sites: { app: site(upstream.url, 'keepalive = 2', 'read_timeout = "5m"') } });
  const session = connect(t, gh);
  for (let i = 1; i <= 5; i++) {
    const stream = session.request({ ':path': `/h2/${i}`, ':authority': 'app.test' });
    stream.on('error', () => {});
    const seen = await upstream.request(`/h2/${i}`);
    stream.close(NGHTTP2_CANCEL);
    assert.equal(await within(seen.responseEnded, 10_000, `the upstream sees /h2/${i} aborted`), 'aborted');
  }
  for (let i = 1; i <= 3; i++) {
    const req = https.get({ host: '127.0.0.1', port: gh.port, servername: 'app.test', ca: ca.caPem, path: `/h1/${i}`, headers: { host: 'app.test' }, agent: false });
    req.on('error', () => {});
    const seen = await upstream.request(`/h1/${i}`);
    req.destroy();
    assert.equal(await within(seen.responseEnded, 10_000, `the upstream sees /h1/${i} aborted`), 'aborted');
  }
  assert.deepEqual(await within(get2(session, '/fresh'), 10_000, 'a fresh request after the cancels'), { status: 200, body: 'fresh' });
  const line = await accessLine(gh, '/h2/1');
  assert.equal(line.status, 499, 'a request whose client left before the response started is logged 499 (nginx: client closed request)');
  assert.equal(line.aborted, true);
  assert.equal((await accessLine(gh, '/h1/1')).status, 499);
});

test('the in-flight gauge counts a hanging HTTP/2 request until its upstream exchange is over', async (t) => {
  const upstream = await startRecorder(t, () => 'hang');
  const gh = await startGatehouse(t, { main: '[metrics]\nlisten = "127.0.0.1:0"\n', sites: { app: site(upstream.url, '', 'read_timeout = "5m"') } });
  const inFlight = async () => sample((await scrape(gh.metrics!.port)).body, 'gatehouse_requests_in_flight');
  const stream = connect(t, gh).request({ ':path': '/hang', ':authority': 'app.test' });
  stream.on('error', () => {});
  const seen = await upstream.request('/hang');
  assert.equal(await inFlight(), 1, 'the request waiting for its upstream is in flight');
  stream.close(NGHTTP2_CANCEL);
  assert.equal(await within(seen.responseEnded, 10_000, 'the upstream sees the exchange aborted'), 'aborted');
  await accessLine(gh, '/hang');
  assert.equal(await inFlight(), 0, 'once the exchange is over nothing is in flight');
});

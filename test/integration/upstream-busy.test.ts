// A busy upstream group: each server runs at most `keepalive` exchanges, at most `max_pending` requests wait for one,
// never longer than connect_timeout, and a request whose client went away leaves the line. Beyond that: 503
// ERR_UPSTREAM_BUSY. Real TLS and node:http2 clients, a node:http upstream that records what it saw.
import assert from 'node:assert/strict';
import { once } from 'node:events';
import http2 from 'node:http2';
import https from 'node:https';
import { test } from 'node:test';
import { readAll } from '../harness/backend.ts';
import { groupSiteToml, startGatehouse } from '../harness/gatehouse.ts';
import { connectH2, get2 } from '../harness/clients.ts';
import { createTestCa } from '../harness/pki.ts';
import { startRecorder } from '../harness/recorder.ts';
import { within } from '../harness/wait.ts';

const ca = createTestCa();
const cert = ca.issue(['app.test']);
const { NGHTTP2_CANCEL } = http2.constants;

test('max_pending: requests beyond the line for a busy group get 503 ERR_UPSTREAM_BUSY with the id of a log line; a cancelled one leaves the line', async (t) => {
  const upstream = await startRecorder(t, (seen) => (seen.url.startsWith('/hold') ? 'hang' : 'ok'));
  const gh = await startGatehouse(t, {
    sites: { app: groupSiteToml(cert, upstream.url, 'keepalive = 1\nmax_pending = 2', 'read_timeout = "5m"') },
  });
  const session = connectH2(t, gh.port, ca.caPem);
  const json = { accept: 'application/json' };
  const open = (path: string) => {
    const stream = session.request({ ':path': path, ':authority': 'app.test', ...json });
    stream.on('error', () => {});
    return stream;
  };
  const hold = open('/hold');
  const held = await upstream.request('/hold');
  const waiting = [open('/wait/1'), open('/wait/2')];
  const busy = await within(get2(session, '/over', json), 'an answer to the request beyond the line');
  assert.equal(busy.status, 503);
  const reply = JSON.parse(busy.body) as { error: string; request_id: string };
  assert.equal(reply.error, 'ERR_UPSTREAM_BUSY');
  const line = await gh.logLine(
    (l) => l.req_id === reply.request_id && l.msg === 'request',
    'the 503 in the access log',
  );
  assert.equal(line.status, 503);
  assert.equal(line.error, 'ERR_UPSTREAM_BUSY');

  // /wait/1 gives up: it leaves the line, so /wait/3 fits, and /wait/1 never reaches the upstream.
  waiting[0]!.close(NGHTTP2_CANCEL);
  await gh.logLine((l) => l.path === '/wait/1' && l.msg === 'request', 'the cancelled waiter is over');
  const third = open('/wait/3');
  const answered = (stream: http2.ClientHttp2Stream) =>
    new Promise<number>((resolve) => stream.once('response', (h) => resolve(Number(h[':status']))));
  const [second, last] = [answered(waiting[1]!), answered(third)];
  held.res.end('done');
  assert.equal(await within(answered(hold), '/hold answered'), 200);
  assert.equal(await within(second, '/wait/2 answered'), 200);
  assert.equal(await within(last, '/wait/3 answered'), 200);
  assert.deepEqual(
    upstream.seen.map((s) => s.url),
    ['/hold', '/wait/2', '/wait/3'],
  );
});

test('a request waits for a busy group no longer than connect_timeout: then 503 ERR_UPSTREAM_BUSY', async (t) => {
  const upstream = await startRecorder(t, () => 'hang');
  const gh = await startGatehouse(t, {
    sites: { app: groupSiteToml(cert, upstream.url, 'keepalive = 1', 'connect_timeout = "1s"\nread_timeout = "5m"') },
  });
  const session = connectH2(t, gh.port, ca.caPem);
  const hold = session.request({ ':path': '/hold', ':authority': 'app.test' });
  hold.on('error', () => {});
  await upstream.request('/hold');
  const late = await within(get2(session, '/late', { accept: 'application/json' }), 'an answer to the waiting request');
  assert.equal(late.status, 503);
  assert.equal((JSON.parse(late.body) as { error: string }).error, 'ERR_UPSTREAM_BUSY');
  assert.equal(upstream.seen.length, 1, 'the waiting request never reached the upstream');
});

test('a client that leaves while its upload waits in line takes nothing with it: the request is never sent, the process lives on', async (t) => {
  const upstream = await startRecorder(t, (seen) => (seen.url === '/hold' ? 'hang' : 'ok'));
  const gh = await startGatehouse(t, {
    sites: { app: groupSiteToml(cert, upstream.url, 'keepalive = 1', 'read_timeout = "5m"') },
  });
  const session = connectH2(t, gh.port, ca.caPem);
  const hold = session.request({ ':path': '/hold', ':authority': 'app.test' });
  hold.on('error', () => {});
  const held = await upstream.request('/hold');
  // Waiting in line with half a body, over both protocols; then the clients go.
  const h1 = https.request({
    host: '127.0.0.1',
    port: gh.port,
    servername: 'app.test',
    ca: ca.caPem,
    method: 'PUT',
    path: '/upload-h1',
    headers: { host: 'app.test', 'content-length': '10' },
    agent: false,
  });
  h1.on('error', () => {});
  await new Promise((resolve) => h1.write('hello', resolve));
  const h2 = session.request({ ':method': 'PUT', ':path': '/upload-h2', ':authority': 'app.test' });
  h2.on('error', () => {});
  await new Promise((resolve) => h2.write('hello', resolve));
  const over = (path: string) => gh.logLine((l) => l.msg === 'request' && l.path === path, `${path} over`);
  const [h1Line, h2Line] = [over('/upload-h1'), over('/upload-h2')];
  h1.destroy();
  h2.close(NGHTTP2_CANCEL);
  assert.equal((await h1Line).status, 499);
  assert.equal((await h2Line).status, 499);
  held.res.end('done');
  assert.deepEqual(await within(get2(session, '/after'), 'the next request'), { status: 200, body: 'ok' });
  assert.deepEqual(
    upstream.seen.map((s) => s.url),
    ['/hold', '/after'],
  );
});

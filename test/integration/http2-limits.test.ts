// What one HTTP/2 connection may cost: concurrent streams (SETTINGS_MAX_CONCURRENT_STREAMS, refused beyond it) and
// streams it resets (rapid reset, CVE-2023-44487: GOAWAY ENHANCE_YOUR_CALM). Real TLS, node:http2 and a bare frame
// client, Hono and a node:http upstream that records what it saw.
import assert from 'node:assert/strict';
import { once } from 'node:events';
import http2 from 'node:http2';
import { test } from 'node:test';
import { Hono } from 'hono';
import { serve } from '@hono/node-server';
import type { AddressInfo } from 'node:net';
import { readAll } from '../harness/backend.ts';
import { FRAME, getHeaders, rawSession, settingsOf } from '../harness/h2-frames.ts';
import { groupSiteToml, startGatehouse } from '../harness/gatehouse.ts';
import { connectH2, get2 } from '../harness/clients.ts';
import { createTestCa } from '../harness/pki.ts';
import { startRecorder } from '../harness/recorder.ts';
import { within } from '../harness/wait.ts';

const ca = createTestCa();
const cert = ca.issue(['app.test']);
const { NGHTTP2_CANCEL, NGHTTP2_ENHANCE_YOUR_CALM, NGHTTP2_REFUSED_STREAM } = http2.constants;
const SETTINGS_MAX_CONCURRENT_STREAMS = 0x3;

test('rapid reset: a connection that opens and resets 400 streams gets GOAWAY ENHANCE_YOUR_CALM; the upstream holds nothing and others are answered', async (t) => {
  // Hono as the upstream: /slow/* never answers (each reset request would hold a connection), / answers.
  const app = new Hono();
  let slowOpen = 0;
  let slowSeen = 0;
  let onIdle = () => {};
  app.get('/slow/:n', (c) => {
    slowOpen++;
    slowSeen++;
    c.req.raw.signal.addEventListener('abort', () => {
      if (--slowOpen === 0) onIdle();
    });
    return new Promise<Response>(() => {});
  });
  app.get('/', (c) => c.text('ok'));
  const server = serve({ fetch: app.fetch, port: 0, hostname: '127.0.0.1' });
  await once(server, 'listening');
  t.after(() => {
    server.close();
    (server as import('node:http').Server).closeAllConnections?.();
  });
  const gh = await startGatehouse(t, {
    sites: {
      app: groupSiteToml(
        cert,
        `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
        'keepalive = 8',
        'read_timeout = "5m"',
      ),
    },
  });

  const attacker = connectH2(t, gh.port, ca.caPem);
  await once(attacker, 'remoteSettings');
  const goaway = new Promise<number>((resolve) => attacker.once('goaway', (code: number) => resolve(code)));
  // Each stream is reset after one turn of the event loop, once node:http2 has sent its HEADERS (a stream closed before
  // that is dropped unsent).
  for (let i = 0; i < 400 && !attacker.destroyed && !attacker.closed; i++) {
    const stream = attacker.request({ ':path': `/slow/${i}`, ':authority': 'app.test' });
    stream.on('error', () => {});
    await new Promise((resolve) => setImmediate(resolve));
    stream.close(NGHTTP2_CANCEL);
  }
  assert.equal(await within(goaway, 'GOAWAY for the resetting connection'), NGHTTP2_ENHANCE_YOUR_CALM);
  await gh.logLine(
    (l) => typeof l.msg === 'string' && l.msg.includes('reset too many streams'),
    'the closed connection is logged',
  );
  assert.deepEqual(await within(get2(connectH2(t, gh.port, ca.caPem), '/'), 'another client is answered'), {
    status: 200,
    body: 'ok',
  });
  // Nothing the attacker started still holds the upstream: every request that reached Hono was aborted.
  if (slowOpen > 0)
    await within(
      new Promise<void>((resolve) => {
        onIdle = resolve;
      }),
      `the ${slowOpen} reset requests still open at the upstream end`,
    );
  t.diagnostic(`reset requests that reached the upstream before their reset: ${slowSeen} of 400`);
});

test('concurrent streams: SETTINGS_MAX_CONCURRENT_STREAMS is 128 and streams beyond it are refused (REFUSED_STREAM)', async (t) => {
  const upstream = await startRecorder(t, () => 'hang');
  const gh = await startGatehouse(t, { sites: { app: groupSiteToml(cert, upstream.url, '', 'read_timeout = "5m"') } });
  const raw = await rawSession(gh.port, { ca: ca.caPem, servername: 'app.test' });
  t.after(() => raw.close());
  // 136 requests at once, without waiting for the server's SETTINGS: streams 1, 3, …, 271.
  raw.send(...Array.from({ length: 136 }, (_, i) => getHeaders(2 * i + 1, 'app.test')));
  const settings = await raw.until((f) => f.type === FRAME.SETTINGS && (f.flags & 0x1) === 0, 'the server SETTINGS');
  assert.equal(settingsOf(settings).get(SETTINGS_MAX_CONCURRENT_STREAMS), 128);
  const refused = async (stream: number) => {
    const reset = await raw.until(
      (f) => (f.type === FRAME.RST_STREAM && f.stream === stream) || f.type === FRAME.GOAWAY,
      `RST_STREAM for stream ${stream}`,
    );
    assert.equal(reset.type, FRAME.RST_STREAM, 'refused streams, not a dropped connection');
    return reset.payload.readUInt32BE(0);
  };
  for (let i = 128; i < 136; i++)
    assert.equal(await refused(2 * i + 1), NGHTTP2_REFUSED_STREAM, `stream ${2 * i + 1} is beyond the limit`);
  assert.equal(
    raw.frames.some((f) => f.type === FRAME.RST_STREAM && f.stream <= 255),
    false,
    'the first 128 streams are not refused',
  );

  // node:http2 clients see the limit too, and queue their own streams behind it.
  const session = connectH2(t, gh.port, ca.caPem);
  await once(session, 'remoteSettings');
  assert.equal(session.remoteSettings.maxConcurrentStreams, 128);
});

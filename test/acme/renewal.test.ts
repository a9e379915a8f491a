// Renewal of a short-lived certificate happens by itself (ratio path; Pebble 2.4 has no ARI) and is hot-swapped:
// new handshakes get the new certificate, a WebSocket and an HTTP/2 session opened before keep running.
import assert from 'node:assert/strict';
import { once } from 'node:events';
import http2 from 'node:http2';
import { test } from 'node:test';
import WebSocket from 'ws';
import { startEchoUpstream } from '../harness/echo-upstream.ts';
import { acmeScenario, presented } from '../harness/acme-setup.ts';

test('a short-lived certificate is renewed by itself and served at once; open connections keep running', async (t) => {
  const backend = await startEchoUpstream();
  t.after(() => backend.close());
  // ratio 0.5 of 10 s: renewal is due 5 s after notBefore.
  const { pebble, gatehouse } = await acmeScenario(t, {
    pebble: { validitySeconds: 10 },
    acme: { renew_ratio: '0.5' },
    upstream: backend.url,
  });
  const [, firstInfo] = await once(gatehouse.acme!.events, 'installed');
  const root = await pebble.rootPem();

  const ws = new WebSocket(`wss://127.0.0.1:${gatehouse.httpsPort}/ws`, {
    servername: 'app.test',
    ca: root,
    headers: { host: 'app.test' },
  } as WebSocket.ClientOptions);
  t.after(() => ws.terminate());
  await once(ws, 'message'); // the backend's hello: open end to end
  const h2 = http2.connect(`https://127.0.0.1:${gatehouse.httpsPort}`, { servername: 'app.test', ca: root });
  t.after(() => h2.close());
  await once(h2, 'connect');

  const [domain, renewed, origin] = await once(gatehouse.acme!.events, 'installed');
  assert.equal(domain, 'app.test');
  assert.equal(origin, 'order');
  assert.notEqual(renewed.serial, firstInfo.serial);
  assert.equal(pebble.issued(), 2);

  const now = await presented(gatehouse.httpsPort, 'app.test', root);
  assert.equal(now.serial, renewed.serial, 'new handshakes get the renewed certificate');
  assert.equal(now.authorized, true);

  // Opened before the renewal: same TLS connection, still on the first certificate, still working.
  const tlsSocket = (ws as unknown as { _socket: import('node:tls').TLSSocket })._socket;
  assert.equal(tlsSocket.getPeerCertificate().serialNumber.toLowerCase(), firstInfo.serial);
  ws.send('still here');
  const [echo] = await once(ws, 'message');
  assert.equal(String(echo), 'still here');
  const stream = h2.request({ ':path': '/after-renewal', ':authority': 'app.test', accept: 'application/json' });
  let body = '';
  stream.setEncoding('utf8').on('data', (d: string) => (body += d));
  await once(stream, 'end');
  assert.equal(JSON.parse(body).url, '/after-renewal');
  assert.equal(
    (h2.socket as import('node:tls').TLSSocket).getPeerCertificate().serialNumber.toLowerCase(),
    firstInfo.serial,
  );
});

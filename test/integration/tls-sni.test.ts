// Two sites with different certificates on one port; SNI picks the certificate, Host must agree with SNI.
import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import tls from 'node:tls';
import { test } from 'node:test';
import { startEchoBackend } from '../../src/demo/echo-backend.ts';
import { request, request2 } from '../helpers/clients.ts';
import { siteToml, startGatehouse } from '../helpers/gatehouse.ts';
import { createTestCa } from '../helpers/pki.ts';

const ca = createTestCa();
const certA = ca.issue(['a.test']);
const certB = ca.issue(['b.test', '*.wild.test']);

/** Completes a TLS handshake (verifying against the test CA) and returns what the server presented. */
function handshake(port: number, options: tls.ConnectionOptions): Promise<{ socket: tls.TLSSocket; cert: crypto.X509Certificate }> {
  return new Promise((resolve, reject) => {
    const socket = tls.connect({ host: '127.0.0.1', port, ca: ca.caPem, ...options }, () => {
      resolve({ socket, cert: socket.getPeerX509Certificate()! });
    });
    socket.once('error', reject);
  });
}

async function twoSites(t: import('node:test').TestContext, main = '') {
  const backend = await startEchoBackend();
  t.after(() => backend.close());
  return startGatehouse(t, { main, sites: { a: siteToml(['a.test'], certA, backend.url), b: siteToml(['b.test', '*.wild.test'], certB, backend.url) } });
}

test('SNI picks each site its own certificate, verified against the CA; wildcards cover one label', async (t) => {
  const gh = await twoSites(t);
  for (const [servername, expected] of [['a.test', certA], ['b.test', certB], ['x.wild.test', certB]] as const) {
    const { socket, cert } = await handshake(gh.port, { servername });
    assert.equal(socket.authorized, true, `${servername}: ${socket.authorizationError}`);
    assert.equal(cert.fingerprint256, new crypto.X509Certificate(expected.certPem).fingerprint256, servername);
    socket.destroy();
  }
});

test('unknown SNI and no SNI are refused when no default site is configured', async (t) => {
  const gh = await twoSites(t);
  await assert.rejects(handshake(gh.port, { servername: 'unknown.test', rejectUnauthorized: false }));
  await assert.rejects(handshake(gh.port, { rejectUnauthorized: false }), /alert|handshake/i);
  await assert.rejects(handshake(gh.port, { servername: 'a.b.wild.test', rejectUnauthorized: false }));
});

test('with default_site, unknown and missing SNI get the default site and its certificate', async (t) => {
  const gh = await twoSites(t, '[https]\ndefault_site = "a.test"\n');
  const unknown = await handshake(gh.port, { servername: 'unknown.test', rejectUnauthorized: false });
  assert.equal(unknown.cert.fingerprint256, new crypto.X509Certificate(certA.certPem).fingerprint256);
  unknown.socket.destroy();
  const none = await handshake(gh.port, { rejectUnauthorized: false });
  assert.equal(none.cert.fingerprint256, new crypto.X509Certificate(certA.certPem).fingerprint256);
  none.socket.destroy();
  // A client without SNI (an IP literal) is answered by the default site.
  const reply = await request(gh.port, { ca: ca.caPem, headers: { host: '127.0.0.1' }, servername: undefined });
  assert.equal(reply.status, 200);
});

test('TLS 1.2 and 1.3 only; ALPN offers h2 and http/1.1; sessions resume', async (t) => {
  const gh = await twoSites(t);
  await assert.rejects(handshake(gh.port, { servername: 'a.test', maxVersion: 'TLSv1.1', minVersion: 'TLSv1' }));
  const v12 = await handshake(gh.port, { servername: 'a.test', maxVersion: 'TLSv1.2' });
  assert.equal(v12.socket.getProtocol(), 'TLSv1.2');
  v12.socket.destroy();
  const h2 = await handshake(gh.port, { servername: 'a.test', ALPNProtocols: ['h2', 'http/1.1'] });
  assert.equal(h2.socket.alpnProtocol, 'h2');
  h2.socket.destroy();
  const h1 = await handshake(gh.port, { servername: 'a.test', ALPNProtocols: ['http/1.1'] });
  assert.equal(h1.socket.alpnProtocol, 'http/1.1');
  h1.socket.destroy();

  // TLS 1.3 tickets arrive after the handshake; wait for one, then resume with it, also across sites' contexts.
  const first = tls.connect({ host: '127.0.0.1', port: gh.port, ca: ca.caPem, servername: 'b.test' });
  const ticket = await new Promise<Buffer>((resolve, reject) => { first.once('session', resolve); first.once('error', reject); });
  first.destroy();
  const resumed = await handshake(gh.port, { servername: 'b.test', session: ticket });
  assert.equal(resumed.socket.isSessionReused(), true);
  resumed.socket.destroy();
});

test('Host must match SNI: 421 for HTTP/1.1 and HTTP/2, with a request id that is in the log', async (t) => {
  const gh = await twoSites(t);
  const ok = await request(gh.port, { ca: ca.caPem, servername: 'a.test' });
  assert.equal(ok.status, 200);
  const misdirected = await request(gh.port, { ca: ca.caPem, servername: 'a.test', headers: { host: 'b.test', accept: 'application/json' } });
  assert.equal(misdirected.status, 421);
  const body = JSON.parse(misdirected.body) as { error: string; request_id: string };
  assert.equal(body.error, 'ERR_TLS_MISDIRECTED');
  assert.equal(misdirected.headers['x-request-id'], body.request_id);
  await gh.logLine((line) => line.req_id === body.request_id && line.status === 421 && line.error === 'ERR_TLS_MISDIRECTED');
  // Port and case and a trailing dot do not matter; the name does.
  assert.equal((await request(gh.port, { ca: ca.caPem, servername: 'a.test', headers: { host: 'A.Test.:443' } })).status, 200);
  const h2 = await request2(gh.port, { ca: ca.caPem, servername: 'b.test', headers: { ':authority': 'a.test' } });
  assert.equal(h2.status, 421);
  assert.equal(h2.alpn, 'h2');
  const h2ok = await request2(gh.port, { ca: ca.caPem, servername: 'b.test' });
  assert.equal(h2ok.status, 200);
  assert.equal(JSON.parse(h2ok.body).headers.host, 'b.test');
});

test('a site certificate replaced at run time is served to new handshakes while open connections carry on', async (t) => {
  const gh = await twoSites(t);
  const before = await handshake(gh.port, { servername: 'a.test', ALPNProtocols: ['http/1.1'] });
  const renewed = ca.issue(['a.test'], 'a-renewed');
  gh.runtime.certificates.setSite('a.test', ['a.test'], { certPem: renewed.certPem, keyPem: (await import('node:fs')).readFileSync(renewed.keyFile, 'utf8') });
  const after = await handshake(gh.port, { servername: 'a.test' });
  assert.equal(after.cert.fingerprint256, new crypto.X509Certificate(renewed.certPem).fingerprint256);
  after.socket.destroy();
  // The connection opened before the swap still serves requests.
  before.socket.write('GET / HTTP/1.1\r\nHost: a.test\r\nConnection: close\r\n\r\n');
  let text = '';
  for await (const chunk of before.socket) text += chunk;
  assert.match(text, /^HTTP\/1\.1 200 OK/);
  assert.equal(before.cert.fingerprint256, new crypto.X509Certificate(certA.certPem).fingerprint256);
});

test('several listen addresses, IPv4 and IPv6, serve the same sites', async (t) => {
  const backend = await startEchoBackend();
  t.after(() => backend.close());
  const gh = await startGatehouse(t, { main: '[https]\nlisten = ["127.0.0.1:0", "[::1]:0"]\n', sites: { a: siteToml(['a.test'], certA, backend.url) } });
  assert.equal(gh.https.length, 2);
  const v6 = gh.https.find((address) => address.family === 'IPv6')!;
  const { socket, cert } = await handshake(v6.port, { host: '::1', servername: 'a.test' });
  assert.equal(cert.fingerprint256, new crypto.X509Certificate(certA.certPem).fingerprint256);
  socket.destroy();
});

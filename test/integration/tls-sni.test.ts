// Two sites with different certificates on one port; SNI picks the certificate, Host must agree with SNI.
import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import fs from 'node:fs';
import http2 from 'node:http2';
import os from 'node:os';
import path from 'node:path';
import tls from 'node:tls';
import { test } from 'node:test';
import { startEchoUpstream } from '../harness/echo-upstream.ts';
import { request, request2 } from '../harness/clients.ts';
import { siteToml, startGatehouse } from '../harness/gatehouse.ts';
import { sClient, sessionLine } from '../harness/openssl.ts';
import { createTestCa } from '../harness/pki.ts';

const ca = createTestCa();
const certA = ca.issue(['a.test']);
const certB = ca.issue(['b.test', '*.wild.test']);

/** Completes a TLS handshake (verifying against the test CA) and returns what the server presented. */
function handshake(
  port: number,
  options: tls.ConnectionOptions,
): Promise<{ socket: tls.TLSSocket; cert: crypto.X509Certificate }> {
  return new Promise((resolve, reject) => {
    const socket = tls.connect({ host: '127.0.0.1', port, ca: ca.caPem, ...options }, () => {
      resolve({ socket, cert: socket.getPeerX509Certificate()! });
    });
    socket.once('error', reject);
  });
}

/** Writes one HTTP/1.1 request on an established TLS socket and returns the response's status code (and closes it). */
async function statusOn(socket: tls.TLSSocket, host: string): Promise<number> {
  socket.write(`GET / HTTP/1.1\r\nHost: ${host}\r\nConnection: close\r\n\r\n`);
  let text = '';
  for await (const chunk of socket) text += chunk;
  return Number(/^HTTP\/1\.1 (\d{3})/.exec(text)?.[1] ?? NaN);
}

/** One HTTP/2 request on a session made over the given TLS socket; resolves with the status. */
async function status2On(socket: tls.TLSSocket, authority: string): Promise<number> {
  const session = http2.connect(`https://${authority}`, { createConnection: () => socket });
  try {
    const stream = session.request({ ':path': '/', ':authority': authority });
    const [headers] = await Promise.all([
      new Promise<http2.IncomingHttpHeaders>((resolve, reject) => {
        stream.once('response', resolve);
        stream.once('error', reject);
      }),
      new Promise((resolve) => {
        stream.resume();
        stream.once('close', resolve);
      }),
    ]);
    return Number(headers[':status']);
  } finally {
    session.destroy();
  }
}

async function twoSites(t: import('node:test').TestContext, main = '') {
  const backend = await startEchoUpstream();
  t.after(() => backend.close());
  return startGatehouse(t, {
    main,
    sites: { a: siteToml(['a.test'], certA, backend.url), b: siteToml(['b.test', '*.wild.test'], certB, backend.url) },
  });
}

test('SNI picks each site its own certificate, verified against the CA; wildcards cover one label', async (t) => {
  const gh = await twoSites(t);
  for (const [servername, expected] of [
    ['a.test', certA],
    ['b.test', certB],
    ['x.wild.test', certB],
  ] as const) {
    const { socket, cert } = await handshake(gh.port, { servername });
    assert.equal(socket.authorized, true, `${servername}: ${socket.authorizationError}`);
    assert.equal(cert.fingerprint256, new crypto.X509Certificate(expected.certPem).fingerprint256, servername);
    socket.destroy();
  }
});

test('unknown SNI and no SNI are refused with a handshake_failure alert when no default site is configured', async (t) => {
  const gh = await twoSites(t);
  const alert = { code: 'ERR_SSL_SSL/TLS_ALERT_HANDSHAKE_FAILURE' };
  for (const maxVersion of ['TLSv1.3', 'TLSv1.2'] as const) {
    await assert.rejects(
      handshake(gh.port, { servername: 'unknown.test', rejectUnauthorized: false, maxVersion }),
      alert,
      `${maxVersion} unknown name`,
    );
    await assert.rejects(handshake(gh.port, { rejectUnauthorized: false, maxVersion }), alert, `${maxVersion} no SNI`);
    await assert.rejects(
      handshake(gh.port, { servername: 'a.b.wild.test', rejectUnauthorized: false, maxVersion }),
      alert,
      `${maxVersion} two labels under a wildcard`,
    );
  }
  // Another TLS stack sees the same alert (40), not a dropped connection.
  const { code, output } = await sClient(gh.port, ['-servername', 'unknown.test']);
  assert.notEqual(code, 0);
  assert.match(output, /alert handshake failure.*SSL alert number 40/);
  await gh.logLine(
    (line) => line.msg === 'TLS handshake failed' && line.servername === 'unknown.test',
    'the refused name in the debug log',
  );
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

test('TLS 1.2 and 1.3 only; ALPN offers h2 and http/1.1; sessions never resume', async (t) => {
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

  // TLS 1.3: the session a client keeps after a request (OpenSSL still sends a ticket) is not resumed.
  const first = tls.connect({
    host: '127.0.0.1',
    port: gh.port,
    ca: ca.caPem,
    servername: 'b.test',
    ALPNProtocols: ['http/1.1'],
  });
  const ticket = new Promise<Buffer>((resolve) => first.once('session', resolve));
  await new Promise((resolve, reject) => {
    first.once('secureConnect', resolve);
    first.once('error', reject);
  });
  assert.equal(await statusOn(first, 'b.test'), 200);
  const again = await handshake(gh.port, { servername: 'b.test', session: await ticket });
  const seen = { protocol: again.socket.getProtocol(), reused: again.socket.isSessionReused() };
  again.socket.destroy();
  assert.deepEqual(seen, { protocol: 'TLSv1.3', reused: false });
});

test('Host must match SNI: 421 for HTTP/1.1 and HTTP/2, with a request id that is in the log', async (t) => {
  const gh = await twoSites(t);
  const ok = await request(gh.port, { ca: ca.caPem, servername: 'a.test' });
  assert.equal(ok.status, 200);
  const misdirected = await request(gh.port, {
    ca: ca.caPem,
    servername: 'a.test',
    headers: { host: 'b.test', accept: 'application/json' },
  });
  assert.equal(misdirected.status, 421);
  const body = JSON.parse(misdirected.body) as { error: string; request_id: string };
  assert.equal(body.error, 'ERR_TLS_MISDIRECTED');
  assert.equal(misdirected.headers['x-request-id'], body.request_id);
  await gh.logLine(
    (line) => line.req_id === body.request_id && line.status === 421 && line.error === 'ERR_TLS_MISDIRECTED',
  );
  // Port and case and a trailing dot do not matter; the name does.
  assert.equal(
    (await request(gh.port, { ca: ca.caPem, servername: 'a.test', headers: { host: 'A.Test.:443' } })).status,
    200,
  );
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
  gh.runtime.certificates.setSite('a.test', ['a.test'], {
    certPem: renewed.certPem,
    keyPem: (await import('node:fs')).readFileSync(renewed.keyFile, 'utf8'),
  });
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
  const backend = await startEchoUpstream();
  t.after(() => backend.close());
  const gh = await startGatehouse(t, {
    main: '[https]\nlisten = ["127.0.0.1:0", "[::1]:0"]\n',
    sites: { a: siteToml(['a.test'], certA, backend.url) },
  });
  assert.equal(gh.https.length, 2);
  const v6 = gh.https.find((address) => address.family === 'IPv6')!;
  const { socket, cert } = await handshake(v6.port, { host: '::1', servername: 'a.test' });
  assert.equal(cert.fingerprint256, new crypto.X509Certificate(certA.certPem).fingerprint256);
  socket.destroy();
});

test('a TLS 1.2 session made for a.test is never resumed: a full handshake, and Host b.test gets 421 (HTTP/1.1 and HTTP/2)', async (t) => {
  const gh = await twoSites(t);
  // Node 24 (OpenSSL) forgets the server name of a resumed TLS 1.2 session (tlsSocket.servername is false), so
  // a resumed session could not be tied to its site: Gatehouse never resumes one.
  const first = await handshake(gh.port, { servername: 'a.test', maxVersion: 'TLSv1.2', ALPNProtocols: ['http/1.1'] });
  const session = first.socket.getSession()!;
  assert.equal(await statusOn(first.socket, 'a.test'), 200);
  const seen: Record<string, { reused: boolean; status: number }> = {};
  for (const alpn of ['http/1.1', 'h2']) {
    const again = await handshake(gh.port, {
      servername: 'a.test',
      maxVersion: 'TLSv1.2',
      session,
      ALPNProtocols: [alpn],
    });
    t.after(() => again.socket.destroy());
    assert.equal(again.socket.getProtocol(), 'TLSv1.2');
    assert.equal(again.socket.alpnProtocol, alpn);
    const reused = again.socket.isSessionReused();
    seen[alpn] = {
      reused,
      status: alpn === 'h2' ? await status2On(again.socket, 'b.test') : await statusOn(again.socket, 'b.test'),
    };
  }
  // A full handshake each time, and Host b.test on a connection made for a.test is misdirected.
  assert.deepEqual(seen, { 'http/1.1': { reused: false, status: 421 }, h2: { reused: false, status: 421 } });
});

test('openssl s_client -sess_in: no resumption, not even under another SNI; Host must match SNI', async (t) => {
  const gh = await twoSites(t);
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'gatehouse-sess-'));
  t.after(() => fs.rmSync(dir, { recursive: true, force: true }));
  const get = (host: string) => `GET / HTTP/1.1\r\nHost: ${host}\r\nConnection: close\r\n\r\n`;
  const run = async (version: string, servername: string, host: string, session: string[]) => {
    const { output } = await sClient(
      gh.port,
      [version, '-alpn', 'http/1.1', '-CAfile', ca.caFile, '-ign_eof', '-servername', servername, ...session],
      get(host),
    );
    return {
      session: sessionLine(output).split(',')[0],
      status: /HTTP\/1\.1 (\d{3})/.exec(output)?.[1],
      cert: /subject=CN ?= ?([\w.]+)/.exec(output)?.[1],
      verified: /Verify return code: 0 \(ok\)/.test(output),
    };
  };
  for (const version of ['-tls1_2', '-tls1_3']) {
    const file = path.join(dir, `a${version}.pem`);
    assert.deepEqual(
      await run(version, 'a.test', 'a.test', ['-sess_out', file]),
      { session: 'New', status: '200', cert: 'a.test', verified: true },
      version,
    );
    assert.ok(fs.statSync(file).size > 0, `${version}: s_client saved the session`);
    // The a.test session again, asking for b.test by Host: a full handshake for a.test, then 421.
    // The a.test session offered under SNI b.test: a full handshake that presents b.test's own certificate.
    assert.deepEqual(
      {
        sameName: await run(version, 'a.test', 'b.test', ['-sess_in', file]),
        otherName: await run(version, 'b.test', 'b.test', ['-sess_in', file]),
      },
      {
        sameName: { session: 'New', status: '421', cert: 'a.test', verified: true },
        otherName: { session: 'New', status: '200', cert: 'b.test', verified: true },
      },
      version,
    );
  }
});

test("with default_site, a client without SNI is answered by the default site only: another site's Host gets 421 (HTTP/1.1 and HTTP/2)", async (t) => {
  const gh = await twoSites(t, '[https]\ndefault_site = "a.test"\n');
  // servername '' sends no SNI (undefined would let node:https derive one from the Host header).
  const noSni = { ca: ca.caPem, servername: '' };
  const h1 = async (host: string) => (await request(gh.port, { ...noSni, headers: { host } })).status;
  const h2 = async (authority: string) => {
    // Node sends no SNI for an IP address; the chain is verified, the name check is moot without SNI.
    const socket = tls.connect({
      host: '127.0.0.1',
      port: gh.port,
      ca: ca.caPem,
      ALPNProtocols: ['h2'],
      checkServerIdentity: () => undefined,
    });
    t.after(() => socket.destroy());
    await new Promise((resolve, reject) => {
      socket.once('secureConnect', resolve);
      socket.once('error', reject);
    });
    return status2On(socket, authority);
  };
  assert.deepEqual(
    {
      h1: {
        'a.test': await h1('a.test'),
        '127.0.0.1': await h1('127.0.0.1'),
        'other.test': await h1('other.test'),
        'b.test': await h1('b.test'),
        'x.wild.test': await h1('x.wild.test'),
      },
      h2: { 'a.test': await h2('a.test'), 'b.test': await h2('b.test') },
    },
    {
      h1: { 'a.test': 200, '127.0.0.1': 200, 'other.test': 200, 'b.test': 421, 'x.wild.test': 421 },
      h2: { 'a.test': 200, 'b.test': 421 },
    },
  );
  await gh.logLine(
    (line) => line.status === 421 && line.error === 'ERR_TLS_MISDIRECTED',
    'the 421 with its error code',
  );
});

// What the upstream sees: Host passed through, X-Real-IP / X-Forwarded-* set by us and never by the client,
// hop-by-hop headers removed in both directions.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { Client } from 'undici';
import { startEchoUpstream } from '../harness/echo-upstream.ts';
import { startBackend } from '../harness/backend.ts';
import { request, request2 } from '../harness/clients.ts';
import { siteToml, startGatehouse } from '../harness/gatehouse.ts';
import { createTestCa } from '../harness/pki.ts';

const ca = createTestCa();
const cert = ca.issue(['app.test']);

async function echoSite(t: import('node:test').TestContext, main = '') {
  const backend = await startEchoUpstream();
  t.after(() => backend.close());
  return startGatehouse(t, { main, sites: { app: siteToml(['app.test'], cert, backend.url) } });
}

const seen = (body: string) => JSON.parse(body) as { headers: Record<string, string>; url: string; method: string };

test('HTTP/1.1 through undici: Host passed through, forwarding headers set, spoofed ones replaced in every spelling', async (t) => {
  const gh = await echoSite(t);
  const client = new Client(`https://127.0.0.1:${gh.port}`, { connect: { ca: ca.caPem, servername: 'app.test' } });
  t.after(() => client.close());
  const res = await client.request({
    path: '/x?y=1',
    method: 'GET',
    headers: {
      host: 'app.test:8443',
      'x-forwarded-for': '6.6.6.6',
      'x-real-ip': '6.6.6.6',
      'x-forwarded-proto': 'http',
      'x-forwarded-host': 'evil.test',
      x_forwarded_for: '7.7.7.7',
      'x.real.ip': '7.7.7.7',
      'X-Forwarded_Host': 'evil2.test',
      forwarded: 'for=6.6.6.6',
      'x-request-id': 'mine',
      x_app_flag: 'kept',
    },
  });
  assert.equal(res.statusCode, 200);
  const { headers, url } = seen(await res.body.text());
  assert.equal(url, '/x?y=1');
  assert.equal(headers.host, 'app.test:8443');
  assert.equal(headers['x-real-ip'], '127.0.0.1');
  assert.equal(headers['x-forwarded-for'], '127.0.0.1');
  assert.equal(headers['x-forwarded-proto'], 'https');
  assert.equal(headers['x-forwarded-host'], 'app.test:8443');
  assert.equal(headers.forwarded, undefined);
  assert.notEqual(headers['x-request-id'], 'mine');
  // The underscore/dot spellings of headers we own are gone; other underscore names pass untouched.
  assert.deepEqual(
    Object.keys(headers).filter((name) => /[_.]/.test(name)),
    ['x_app_flag'],
  );
});

test("a trusted proxy's X-Forwarded-* are kept and appended to; the client address comes from the chain", async (t) => {
  const gh = await echoSite(t, '[proxy]\ntrusted_proxies = ["127.0.0.0/8"]\n');
  const reply = await request(gh.port, {
    ca: ca.caPem,
    servername: 'app.test',
    headers: {
      'x-forwarded-for': '203.0.113.9, 127.0.0.5',
      'x-forwarded-proto': 'https',
      'x-forwarded-host': 'front.test',
    },
  });
  const { headers } = seen(reply.body);
  assert.equal(headers['x-forwarded-for'], '203.0.113.9, 127.0.0.5, 127.0.0.1');
  assert.equal(headers['x-real-ip'], '203.0.113.9');
  assert.equal(headers['x-forwarded-host'], 'front.test');
});

test('hop-by-hop headers and headers named in Connection are removed in both directions', async (t) => {
  const backend = await startBackend(t, (req, res) => {
    res.writeHead(200, {
      connection: 'X-Upstream-Hop',
      'x-upstream-hop': 'secret',
      'keep-alive': 'timeout=5',
      'proxy-connection': 'x',
      'x-kept': 'yes',
      'content-type': 'application/json',
    });
    res.end(JSON.stringify(req.headers));
  });
  const gh = await startGatehouse(t, { sites: { app: siteToml(['app.test'], cert, backend.url) } });
  const reply = await request(gh.port, {
    ca: ca.caPem,
    servername: 'app.test',
    headers: {
      connection: 'keep-alive, X-Client-Hop',
      'x-client-hop': 'secret',
      'keep-alive': 'timeout=9',
      'proxy-connection': 'keep-alive',
      te: 'trailers, gzip',
      'proxy-authorization': 'Basic eA==',
      'x-fine': 'ok',
    },
  });
  const upstream = JSON.parse(reply.body) as Record<string, string>;
  assert.equal(upstream['x-client-hop'], undefined);
  assert.equal(upstream['proxy-connection'], undefined);
  assert.equal(upstream['proxy-authorization'], undefined);
  assert.equal(upstream.te, undefined, 'TE is hop-by-hop, trailers included');
  assert.equal(upstream['x-fine'], 'ok');
  assert.notEqual(
    upstream.connection,
    'close',
    "a client's Connection header never reaches the upstream keep-alive pool",
  );
  assert.equal(reply.headers['x-upstream-hop'], undefined);
  assert.equal(reply.headers['proxy-connection'], undefined);
  assert.equal(reply.headers['x-kept'], 'yes');
  // HTTP/2 clients get the same answer without connection-specific headers (which HTTP/2 forbids).
  const h2 = await request2(gh.port, { ca: ca.caPem, servername: 'app.test' });
  assert.equal(h2.status, 200);
  assert.equal(h2.headers['x-upstream-hop'], undefined);
  assert.equal(h2.headers['x-kept'], 'yes');
});

test('upstream keep-alive: a client asking Connection: close does not close the upstream connection', async (t) => {
  const sockets = new Set<unknown>();
  const backend = await startBackend(t, (req, res) => {
    sockets.add(req.socket);
    res.end('ok');
  });
  const gh = await startGatehouse(t, { sites: { app: siteToml(['app.test'], cert, backend.url) } });
  for (let i = 0; i < 5; i++) {
    const reply = await request(gh.port, { ca: ca.caPem, servername: 'app.test', headers: { connection: 'close' } });
    assert.equal(reply.body, 'ok');
  }
  assert.equal(sockets.size, 1, 'five requests reused one upstream connection');
});

// Requests refused before any upstream sees them, against real upstream frameworks (Express 5, Hono) that record
// what reaches them: TRACE and TRACK (405, as nginx), an HTTP/1.1 request with two Host lines (RFC 9112 §3.2), an
// HTTP/2 request whose Host differs from its :authority (RFC 9113 §8.3.1); and TE, hop-by-hop, is never forwarded.
import assert from 'node:assert/strict';
import type { IncomingHttpHeaders, IncomingMessage, Server } from 'node:http';
import http2 from 'node:http2';
import type { AddressInfo } from 'node:net';
import tls from 'node:tls';
import { test, type TestContext } from 'node:test';
import { serve } from '@hono/node-server';
import express from 'express';
import { Hono } from 'hono';
import { request } from '../harness/clients.ts';
import { siteToml, startGatehouse } from '../harness/gatehouse.ts';
import { createTestCa } from '../harness/pki.ts';

const ca = createTestCa();
const cert = ca.issue(['app.test']);

interface Seen {
  framework: string;
  method: string;
  url: string;
  headers: IncomingHttpHeaders;
}

function closing(t: TestContext, server: Server): void {
  t.after(
    () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  );
}

/** Express 5 answering every request with what it received; `seen` records each one. */
async function expressUpstream(t: TestContext, seen: Seen[]): Promise<string> {
  const app = express();
  app.use((req, res) => {
    seen.push({ framework: 'express', method: req.method, url: req.originalUrl, headers: req.headers });
    res.json({ framework: 'express', method: req.method, headers: req.headers });
  });
  const server = app.listen(0, '127.0.0.1');
  closing(t, server);
  await new Promise((resolve, reject) => {
    server.once('listening', resolve);
    server.once('error', reject);
  });
  return `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
}

/** Hono on @hono/node-server, recording the headers as they arrived on the wire (the node:http request). */
async function honoUpstream(t: TestContext, seen: Seen[]): Promise<string> {
  const app = new Hono<{ Bindings: { incoming: IncomingMessage } }>();
  app.all('*', (c) => {
    const incoming = c.env.incoming;
    seen.push({ framework: 'hono', method: incoming.method!, url: incoming.url!, headers: incoming.headers });
    return c.json({ framework: 'hono', method: incoming.method, headers: incoming.headers });
  });
  const port = await new Promise<number>((resolve) => {
    closing(t, serve({ fetch: app.fetch, port: 0, hostname: '127.0.0.1' }, (info) => resolve(info.port)) as Server);
  });
  return `http://127.0.0.1:${port}`;
}

/** Two routes: / to Express, /hono/ to Hono. */
async function site(t: TestContext) {
  const seen: Seen[] = [];
  const expressUrl = await expressUpstream(t, seen);
  const honoUrl = await honoUpstream(t, seen);
  const gh = await startGatehouse(t, {
    sites: {
      app: siteToml(['app.test'], cert, expressUrl, '', `[[routes]]\npath = "/hono/"\nupstream = "${honoUrl}"\n`),
    },
  });
  return { gh, seen };
}

/** Writes a raw HTTP/1.1 request on a TLS connection (SNI app.test) and returns the status line and headers it got. */
async function raw(port: number, text: string): Promise<{ status: number; head: string }> {
  const socket = tls.connect({
    host: '127.0.0.1',
    port,
    ca: ca.caPem,
    servername: 'app.test',
    ALPNProtocols: ['http/1.1'],
  });
  await new Promise((resolve, reject) => {
    socket.once('secureConnect', resolve);
    socket.once('error', reject);
  });
  socket.write(text);
  let answer = '';
  for await (const chunk of socket) answer += chunk;
  return {
    status: Number(/^HTTP\/1\.1 (\d{3})/.exec(answer)?.[1] ?? NaN),
    head: answer.split('\r\n\r\n')[0]!.toLowerCase(),
  };
}

/** One HTTP/2 request; resolves with the response headers and body. */
async function h2(
  port: number,
  headers: http2.OutgoingHttpHeaders,
): Promise<{ status: number; headers: http2.IncomingHttpHeaders; body: string }> {
  const session = http2.connect(`https://127.0.0.1:${port}`, { ca: ca.caPem, servername: 'app.test' });
  try {
    const stream = session.request({ ':path': '/', ':authority': 'app.test', ...headers }, { endStream: true });
    stream.setEncoding('utf8');
    let body = '';
    stream.on('data', (chunk: string) => {
      body += chunk;
    });
    const [response] = await Promise.all([
      new Promise<http2.IncomingHttpHeaders>((resolve, reject) => {
        stream.once('response', resolve);
        stream.once('error', reject);
      }),
      new Promise((resolve, reject) => {
        stream.once('end', resolve);
        stream.once('error', reject);
      }),
    ]);
    return { status: Number(response[':status']), headers: response, body };
  } finally {
    session.close();
  }
}

test("TRACE and TRACK get 405 with Allow from the error table (TRACK over HTTP/1.1: 400 from Node's parser); Express never sees them", async (t) => {
  const { gh, seen } = await site(t);
  const h1 = await request(gh.port, {
    ca: ca.caPem,
    servername: 'app.test',
    method: 'TRACE',
    headers: { accept: 'application/json', cookie: 'secret=1' },
  });
  const trace2 = await h2(gh.port, { ':method': 'TRACE', accept: 'application/json' });
  const track2 = await h2(gh.port, { ':method': 'TRACK', accept: 'application/json' });
  for (const [method, protocol, reply] of [
    ['TRACE', 'HTTP/1.1', h1],
    ['TRACE', 'HTTP/2', trace2],
    ['TRACK', 'HTTP/2', track2],
  ] as const) {
    assert.equal(reply.status, 405, `${method} over ${protocol}`);
    assert.equal(reply.headers.allow, 'GET, HEAD, POST, PUT, PATCH, DELETE, OPTIONS', `${method} over ${protocol}`);
    const body = JSON.parse(reply.body) as { error: string; request_id: string };
    assert.equal(body.error, 'ERR_HTTP_TRACE');
    await gh.logLine(
      (line) => line.req_id === body.request_id && line.status === 405 && line.method === method,
      `${method} in the access log`,
    );
  }
  // Node's HTTP/1.1 parser (llhttp) knows no TRACK method and answers it 400 itself.
  assert.equal((await raw(gh.port, 'TRACK / HTTP/1.1\r\nHost: app.test\r\nConnection: close\r\n\r\n')).status, 400);
  assert.deepEqual(
    seen.filter((s) => s.method === 'TRACE' || s.method === 'TRACK'),
    [],
  );
  // Other methods still pass.
  assert.equal((await request(gh.port, { ca: ca.caPem, servername: 'app.test', method: 'OPTIONS' })).status, 200);
  assert.deepEqual(
    seen.map((s) => s.method),
    ['OPTIONS'],
  );
});

test('an HTTP/1.1 request with two Host lines gets 400; an HTTP/2 Host that differs from :authority gets 400', async (t) => {
  const { gh, seen } = await site(t);
  const twoHosts = await raw(
    gh.port,
    'GET / HTTP/1.1\r\nHost: app.test\r\nHost: other.test\r\nConnection: close\r\n\r\n',
  );
  const sameTwice = await raw(
    gh.port,
    'GET / HTTP/1.1\r\nHost: app.test\r\nHost: app.test\r\nConnection: close\r\n\r\n',
  );
  const authorityAndHost = await h2(gh.port, { host: 'other.test' });
  assert.deepEqual(
    { twoHosts: twoHosts.status, sameTwice: sameTwice.status, authorityAndHost: authorityAndHost.status },
    { twoHosts: 400, sameTwice: 400, authorityAndHost: 400 },
  );
  assert.match(twoHosts.head, /x-request-id: \w+/);
  assert.deepEqual(seen, [], 'no upstream saw them');
  // The same name in Host and :authority (port and case aside) is fine, and so is one Host line.
  assert.equal((await h2(gh.port, { host: 'App.Test:443' })).status, 200);
  assert.equal((await raw(gh.port, 'GET / HTTP/1.1\r\nHost: app.test\r\nConnection: close\r\n\r\n')).status, 200);
  assert.equal(seen.length, 2);
});

test('TE is hop-by-hop and never reaches the upstream (Hono and Express, HTTP/1.1 and HTTP/2 clients)', async (t) => {
  const { gh, seen } = await site(t);
  assert.equal(
    (
      await request(gh.port, {
        ca: ca.caPem,
        servername: 'app.test',
        path: '/hono/h1',
        headers: { te: 'trailers', connection: 'TE' },
      })
    ).status,
    200,
  );
  assert.equal((await h2(gh.port, { ':path': '/hono/h2', te: 'trailers' })).status, 200);
  assert.equal(
    (
      await request(gh.port, {
        ca: ca.caPem,
        servername: 'app.test',
        path: '/express',
        headers: { te: 'trailers', connection: 'TE' },
      })
    ).status,
    200,
  );
  assert.deepEqual(
    seen.map((s) => [s.framework, s.url, s.headers.te]),
    [
      ['hono', '/hono/h1', undefined],
      ['hono', '/hono/h2', undefined],
      ['express', '/express', undefined],
    ],
  );
});

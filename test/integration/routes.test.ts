// Route matching by longest prefix, deny rules on the normalized path, static files, fixed-status routes,
// and the plain-HTTP listener's redirect.
import assert from 'node:assert/strict';
import fs from 'node:fs';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import tls from 'node:tls';
import { test } from 'node:test';
import { startEchoUpstream } from '../harness/echo-upstream.ts';
import { readAll } from '../harness/backend.ts';
import { request } from '../harness/clients.ts';
import { siteToml, startGatehouse } from '../harness/gatehouse.ts';
import { createTestCa } from '../harness/pki.ts';

const ca = createTestCa();
const cert = ca.issue(['app.test', 'www.app.test']);

async function site(t: import('node:test').TestContext, http = false) {
  const backend = await startEchoUpstream();
  t.after(() => backend.close());
  const root = fs.mkdtempSync(path.join(os.tmpdir(), 'gatehouse-www-'));
  fs.mkdirSync(path.join(root, 'static', 'docs'), { recursive: true });
  fs.writeFileSync(path.join(root, 'static', 'hello.txt'), 'hello file\n');
  fs.writeFileSync(path.join(root, 'static', 'docs', 'index.html'), '<h1>docs</h1>\n');
  fs.writeFileSync(path.join(root, 'static', '.secret'), 'dotfile\n');
  fs.writeFileSync(path.join(root, 'outside.txt'), 'outside the route\n');
  const gh = await startGatehouse(t, {
    http,
    sites: {
      app:
        siteToml(['app.test', 'www.app.test'], cert, backend.url, `deny_paths = ['/\\.ht', '^/internal/']`, '') +
        `\n[[routes]]\npath = "/static/"\nroot = "${root}"\n` +
        `\n[[routes]]\npath = "/static/private/"\nstatus = 403\n` +
        `\n[[routes]]\npath = "/gone"\nstatus = 410\n`,
    },
  });
  return { gh, root };
}

const get = (port: number, p: string, headers: Record<string, string> = {}) =>
  request(port, { ca: ca.caPem, servername: 'app.test', path: p, headers });

test('deny rules answer 403 on the normalized path, whatever the encoding or dot segments', async (t) => {
  const { gh } = await site(t);
  for (const p of [
    '/.htaccess',
    '/sub/.htpasswd',
    '/%2Ehtaccess',
    '/a/../.htaccess',
    '/x/%2e%2e/.ht',
    '//.htaccess',
    '/internal/x',
    '/a/../internal/x',
    '/%69nternal/x',
  ]) {
    const reply = await get(gh.port, p);
    assert.equal(reply.status, 403, p);
    assert.match(reply.body, /403 Forbidden/);
  }
  assert.equal((await get(gh.port, '/not-internal/x')).status, 200);
  assert.equal((await get(gh.port, '/x?file=.htaccess')).status, 200, 'the query is not part of the path');
});

test('longest prefix wins; fixed-status routes answer on their own', async (t) => {
  const { gh } = await site(t);
  assert.equal((await get(gh.port, '/static/private/x')).status, 403);
  assert.equal((await get(gh.port, '/gone')).status, 410);
  const proxied = await get(gh.port, '/api/x');
  assert.equal(JSON.parse(proxied.body).url, '/api/x');
  assert.equal((await get(gh.port, '/bad%zz')).status, 400);
});

test('static files: content, index file, ETag and Last-Modified with 304, no escape from the root, no dotfiles', async (t) => {
  const { gh } = await site(t);
  const file = await get(gh.port, '/static/hello.txt');
  assert.equal(file.status, 200);
  assert.equal(file.body, 'hello file\n');
  assert.ok(file.headers.etag);
  assert.ok(file.headers['last-modified']);
  assert.equal((await get(gh.port, '/static/hello.txt', { 'if-none-match': String(file.headers.etag) })).status, 304);
  assert.equal(
    (await get(gh.port, '/static/hello.txt', { 'if-modified-since': String(file.headers['last-modified']) })).status,
    304,
  );
  assert.equal((await get(gh.port, '/static/docs/')).body, '<h1>docs</h1>\n');
  const escape = await get(gh.port, '/static/../outside.txt');
  assert.notEqual(escape.body, 'outside the route\n');
  // Encoded dot segments leave the /static/ route altogether (routing sees the normalized path), so the file is not served.
  assert.notEqual((await get(gh.port, '/static/%2e%2e/outside.txt')).body, 'outside the route\n');
  assert.notEqual((await get(gh.port, '/static/.secret')).body, 'dotfile\n');
  assert.equal((await get(gh.port, '/static/missing.txt')).status, 404);
  const post = await request(gh.port, {
    ca: ca.caPem,
    servername: 'app.test',
    path: '/static/hello.txt',
    method: 'POST',
    body: 'x',
  });
  assert.deepEqual([post.status, post.headers.allow], [405, 'GET, HEAD']);
});

test('plain HTTP: 308 to HTTPS keeping path and query, only for configured names; responders run first', async (t) => {
  const { gh } = await site(t, true);
  const plain = (host: string, p: string) =>
    new Promise<http.IncomingMessage>((resolve, reject) => {
      http
        .request({ host: '127.0.0.1', port: gh.httpPort, path: p, method: 'POST', headers: { host } }, resolve)
        .on('error', reject)
        .end('body');
    });
  const redirect = await plain('www.app.test', '/a/b?c=d');
  assert.equal(redirect.statusCode, 308);
  assert.equal(redirect.headers.location, `https://www.app.test:${gh.port}/a/b?c=d`);
  const stranger = await plain('evil.test', '/');
  assert.equal(stranger.statusCode, 421);
  await readAll(stranger);
  // The ACME issue plugs its HTTP-01 responder in here; it is asked before the redirect.
  gh.runtime.plainHttpResponders.push((req, res) => {
    if (!req.url?.startsWith('/.well-known/acme-challenge/')) return false;
    res.end('token-answer');
    return true;
  });
  const challenge = await plain('app.test:80', '/.well-known/acme-challenge/abc');
  assert.equal(challenge.statusCode, 200);
  assert.equal(await readAll(challenge), 'token-answer');
});

test('malformed requests get 400 and the server keeps serving', async (t) => {
  const { gh } = await site(t);
  const raw = (text: string) =>
    new Promise<string>((resolve, reject) => {
      const socket = tls.connect(
        { host: '127.0.0.1', port: gh.port, servername: 'app.test', ca: ca.caPem, ALPNProtocols: ['http/1.1'] },
        () => socket.end(text),
      );
      let reply = '';
      socket
        .setEncoding('utf8')
        .on('data', (chunk: string) => {
          reply += chunk;
        })
        .on('end', () => resolve(reply))
        .on('error', reject);
    });
  assert.match(await raw('GARBAGE\r\n\r\n'), /^HTTP\/1\.1 400/);
  assert.match(await raw('GET / HTTP/1.1\r\n\r\n'), /^HTTP\/1\.1 400/, 'no Host header');
  assert.match(
    await raw('GET http://other.test/ HTTP/1.1\r\nHost: app.test\r\n\r\n'),
    /^HTTP\/1\.1 400/,
    'absolute-form target',
  );
  assert.match(
    await raw('GET / HTTP/1.1\r\nHost: app.test\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n'),
    /^HTTP\/1\.1 400/,
    'smuggling-shaped framing',
  );
  assert.equal((await get(gh.port, '/still-alive')).status, 200);
});

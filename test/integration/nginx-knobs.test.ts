// The knobs nginx configs use, end to end with an Express 5 upstream over real TLS (HTTP/1.1 and HTTP/2):
// response_headers (add_header … always), request_headers (proxy_set_header with nginx variables), rewrite_prefix
// (proxy_pass http://b/prefix/), ip_rules (allow/deny), redirect (return 301 URL), rate_limit (limit_req nodelay).
import assert from 'node:assert/strict';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { test, type TestContext } from 'node:test';
import express from 'express';
import { request, request2 } from '../harness/clients.ts';
import { startGatehouse } from '../harness/gatehouse.ts';
import { createTestCa } from '../harness/pki.ts';

const ca = createTestCa();
const cert = ca.issue(['app.test']);

interface Seen {
  url: string;
  headers: Record<string, string>;
}

/** Express echoing what it received; /frame sets its own X-Frame-Options (Express adds X-Powered-By itself). */
async function startExpress(t: TestContext): Promise<{ url: string; seen: Seen[] }> {
  const seen: Seen[] = [];
  const app = express();
  app.get('/frame', (_req, res) => {
    res.set('x-frame-options', 'ALLOW-FROM https://other.test').json({});
  });
  app.use((req, res) => {
    seen.push({ url: req.originalUrl, headers: req.headers as Record<string, string> });
    res.json({ url: req.originalUrl, headers: req.headers });
  });
  const server = http.createServer(app);
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  t.after(
    () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  );
  return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, seen };
}

function site(upstream: string, top: string, routes: string): string {
  return `server_names = ["app.test"]
deny_paths = ["^/denied"]
${top}
[tls]
cert = ${JSON.stringify(cert.certFile)}
key = ${JSON.stringify(cert.keyFile)}

[[routes]]
path = "/"
upstream = "${upstream}"
${routes}`;
}

const get = (port: number, path: string, headers: Record<string, string> = {}) =>
  request(port, { ca: ca.caPem, servername: 'app.test', path, headers });

test("response_headers: on proxied answers (replacing the upstream's, \"\" removing it) and on our own error pages, HTTP/1.1 and HTTP/2; a route's entries override the site's", async (t) => {
  const app = await startExpress(t);
  const gh = await startGatehouse(t, {
    sites: {
      app: site(
        app.url,
        'response_headers = { "X-Frame-Options" = "DENY", "X-Powered-By" = "", "X-Site" = "site" }',
        `[[routes]]
path = "/frame"
upstream = "${app.url}"
[[routes]]
path = "/special"
upstream = "${app.url}"
response_headers = { "X-Frame-Options" = "SAMEORIGIN" }
[[routes]]
path = "/gone"
status = 410
`,
      ),
    },
  });
  const pick = (headers: http.IncomingHttpHeaders) => ({
    frame: headers['x-frame-options'],
    powered: headers['x-powered-by'],
    site: headers['x-site'],
  });
  const site1 = { frame: 'DENY', powered: undefined, site: 'site' };
  assert.deepEqual(pick((await get(gh.port, '/')).headers), site1);
  // The upstream's own X-Frame-Options is replaced (nginx: proxy_hide_header + add_header).
  assert.deepEqual(pick((await get(gh.port, '/frame')).headers), site1);
  assert.deepEqual(pick((await get(gh.port, '/special')).headers), { ...site1, frame: 'SAMEORIGIN' });
  const denied = await get(gh.port, '/denied');
  assert.equal(denied.status, 403);
  assert.deepEqual(pick(denied.headers), site1);
  assert.deepEqual(pick((await get(gh.port, '/gone')).headers), site1);
  const h2 = await request2(gh.port, { ca: ca.caPem, servername: 'app.test', path: '/frame' });
  assert.equal(h2.status, 200);
  assert.deepEqual(pick(h2.headers), site1);
  const h2denied = await request2(gh.port, { ca: ca.caPem, servername: 'app.test', path: '/denied' });
  assert.deepEqual(pick(h2denied.headers), site1);
});

test('request_headers: nginx variables as proxy_set_header writes them, "" removes a header, a route entry overrides the site\'s', async (t) => {
  const app = await startExpress(t);
  const gh = await startGatehouse(t, {
    sites: {
      app: site(
        app.url,
        `[request_headers]
"X-Real-IP" = "$remote_addr"
"X-Forwarded-Host" = "code.example"
"X-Original" = "$request_uri"
"X-Uri" = "$uri"
"X-Fwd" = "$proxy_add_x_forwarded_for"
"X-Host" = "$host"
"X-Agent" = "ua=\${http_user_agent}"
"X-Server" = "$server_name:$server_port"
"X-Scheme" = "$scheme"
"X-Missing" = "$http_x_not_sent"
"Accept-Language" = ""`,
        `[[routes]]
path = "/api"
upstream = "${app.url}"
request_headers = { "X-Host" = "api-$host", "X-Agent" = "" }
`,
      ),
    },
  });
  const headers = {
    'user-agent': 'curl/8',
    'accept-language': 'de',
    'x-forwarded-for': '6.6.6.6',
  };
  const root = JSON.parse((await get(gh.port, '/a/./b/../c%7e?q=1', headers)).body) as Seen;
  assert.equal(root.url, '/a/c~?q=1');
  const h = root.headers;
  assert.deepEqual(
    {
      realIp: h['x-real-ip'],
      host: h.host,
      forwardedHost: h['x-forwarded-host'],
      original: h['x-original'],
      uri: h['x-uri'],
      // A client's X-Forwarded-For is not believed (no trusted_proxies): the value is Gatehouse's.
      fwd: h['x-fwd'],
      xHost: h['x-host'],
      agent: h['x-agent'],
      server: h['x-server'],
      scheme: h['x-scheme'],
      missing: h['x-missing'],
      language: h['accept-language'],
    },
    {
      realIp: '127.0.0.1',
      host: 'app.test',
      forwardedHost: 'code.example',
      original: '/a/./b/../c%7e?q=1',
      uri: '/a/c~',
      fwd: '127.0.0.1',
      xHost: 'app.test',
      agent: 'ua=curl/8',
      server: `app.test:${gh.port}`,
      scheme: 'https',
      missing: undefined,
      language: undefined,
    },
  );
  const api = JSON.parse((await get(gh.port, '/api/x', headers)).body) as Seen;
  assert.equal(api.headers['x-host'], 'api-app.test');
  assert.equal(api.headers['x-agent'], undefined);
  assert.equal(api.headers['x-real-ip'], '127.0.0.1');
  // HTTP/2: $http_host reads :authority.
  const h2 = JSON.parse(
    (
      await request2(gh.port, {
        ca: ca.caPem,
        servername: 'app.test',
        path: '/api/h2',
        headers: { 'user-agent': 'h2' },
      })
    ).body,
  ) as Seen;
  assert.equal(h2.headers['x-host'], 'api-app.test');
  assert.equal(h2.headers['x-original'], '/api/h2');
});

test('rewrite_prefix: the route path is replaced in the normalized path the upstream receives; the access log shows both', async (t) => {
  const app = await startExpress(t);
  const gh = await startGatehouse(t, {
    sites: {
      app: site(
        app.url,
        '',
        `[[routes]]
path = "/app/"
upstream = "${app.url}"
rewrite_prefix = "/prefix/"
[[routes]]
path = "/strip"
upstream = "${app.url}"
rewrite_prefix = "/"
`,
      ),
    },
  });
  const reply = await get(gh.port, '/app/x%20y/../z?q=1');
  assert.equal(reply.status, 200);
  assert.equal((JSON.parse(reply.body) as Seen).url, '/prefix/z?q=1');
  const line = await gh.logLine((l) => l.msg === 'request' && l.path === '/app/x%20y/../z');
  assert.equal(line.upstream_path, '/prefix/z');
  // "/app" on the route "/app/" is that route's root.
  assert.equal((JSON.parse((await get(gh.port, '/app')).body) as Seen).url, '/prefix/');
  assert.equal((JSON.parse((await get(gh.port, '/strip/deep/er')).body) as Seen).url, '//deep/er');
  // A route without rewrite_prefix forwards the path as it is.
  assert.equal((JSON.parse((await get(gh.port, '/other')).body) as Seen).url, '/other');
});

test('ip_rules: first match wins, no match allows, a route list replaces the site list; 403 with an error id that is in the log', async (t) => {
  const app = await startExpress(t);
  const gh = await startGatehouse(t, {
    sites: {
      app: site(
        app.url,
        'ip_rules = ["allow 10.0.0.0/8", "deny all"]',
        `[[routes]]
path = "/open"
upstream = "${app.url}"
ip_rules = ["deny 10.0.0.0/8", "allow 127.0.0.0/8", "deny all"]
[[routes]]
path = "/nomatch"
upstream = "${app.url}"
ip_rules = ["deny 192.168.0.0/16"]
`,
      ),
    },
  });
  const denied = await get(gh.port, '/x', { accept: 'application/json' });
  assert.equal(denied.status, 403);
  const body = JSON.parse(denied.body) as { error: string; request_id: string };
  assert.equal(body.error, 'ERR_IP_DENIED');
  const line = await gh.logLine((l) => l.req_id === body.request_id);
  assert.equal(line.error, 'ERR_IP_DENIED');
  assert.equal(app.seen.length, 0);
  assert.equal((await get(gh.port, '/open/x')).status, 200);
  assert.equal((await get(gh.port, '/nomatch')).status, 200);
  const h2 = await request2(gh.port, { ca: ca.caPem, servername: 'app.test', path: '/x' });
  assert.equal(h2.status, 403);
});

test('ip_rules and rate_limit use the client address from X-Forwarded-For only when the peer is in [proxy] trusted_proxies', async (t) => {
  const app = await startExpress(t);
  const routes = `[[routes]]
path = "/limited"
upstream = "${app.url}"
rate_limit = { rate = "1r/m", burst = 1 }
`;
  const files = (main: string) => ({
    main,
    sites: { app: site(app.url, 'ip_rules = ["allow 10.0.0.0/8", "deny all"]', routes) },
  });
  const trusting = await startGatehouse(t, files('[proxy]\ntrusted_proxies = ["127.0.0.1"]\n'));
  const untrusting = await startGatehouse(t, files(''));
  const from = (address: string) => ({ 'x-forwarded-for': address });
  assert.equal((await get(trusting.port, '/', from('10.1.2.3'))).status, 200);
  assert.equal((await get(trusting.port, '/', from('192.0.2.1'))).status, 403);
  assert.equal((await get(untrusting.port, '/', from('10.1.2.3'))).status, 403);
  // Buckets are per client address: 10.0.0.1's refusal leaves 10.0.0.2 alone.
  const statuses = [];
  for (let i = 0; i < 3; i++) statuses.push((await get(trusting.port, '/limited', from('10.0.0.1'))).status);
  assert.deepEqual(statuses, [200, 200, 429]);
  assert.equal((await get(trusting.port, '/limited', from('10.0.0.2'))).status, 200);
});

test('rate_limit: within burst served at once, beyond it 429 with Retry-After and an error id; a route without one is not limited', async (t) => {
  const app = await startExpress(t);
  const gh = await startGatehouse(t, {
    sites: {
      app: site(
        app.url,
        '',
        `[[routes]]
path = "/limited"
upstream = "${app.url}"
rate_limit = { rate = "1r/m", burst = 2 }
`,
      ),
    },
  });
  const replies = [];
  for (let i = 0; i < 4; i++) replies.push(await get(gh.port, '/limited', { accept: 'application/json' }));
  assert.deepEqual(
    replies.map((r) => r.status),
    [200, 200, 200, 429],
  );
  const refused = replies[3]!;
  const retryAfter = Number(refused.headers['retry-after']);
  // One request drains in 60 s at 1r/m: the wait is at most that.
  assert.ok(retryAfter >= 1 && retryAfter <= 60, `retry-after ${retryAfter}`);
  const body = JSON.parse(refused.body) as { error: string; request_id: string };
  assert.equal(body.error, 'ERR_RATE_LIMITED');
  assert.equal((await gh.logLine((l) => l.req_id === body.request_id)).status, 429);
  assert.equal(app.seen.length, 3);
  for (let i = 0; i < 5; i++) assert.equal((await get(gh.port, '/free')).status, 200);
});

test('redirect: 301 by default with $request_uri, other statuses and variables; before anything is proxied', async (t) => {
  const app = await startExpress(t);
  const gh = await startGatehouse(t, {
    sites: {
      app: site(
        app.url,
        'response_headers = { "X-Frame-Options" = "DENY" }',
        `[[routes]]
path = "/old"
redirect = "https://new.example.com$request_uri"
[[routes]]
path = "/moved"
redirect = "$scheme://$host/new$uri"
status = 307
`,
      ),
    },
  });
  const old = await get(gh.port, '/old/page?x=1');
  assert.equal(old.status, 301);
  assert.equal(old.headers.location, 'https://new.example.com/old/page?x=1');
  assert.equal(old.headers['x-frame-options'], 'DENY');
  assert.ok(old.headers['x-request-id']);
  const moved = await get(gh.port, '/moved/a%20b?y=2');
  assert.equal(moved.status, 307);
  assert.equal(moved.headers.location, 'https://app.test/new/moved/a%20b');
  const h2 = await request2(gh.port, { ca: ca.caPem, servername: 'app.test', path: '/old' });
  assert.equal(h2.status, 301);
  assert.equal(h2.headers.location, 'https://new.example.com/old');
  assert.equal(app.seen.length, 0);
});

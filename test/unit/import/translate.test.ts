// The translation, directive by directive: what each becomes in the TOML (the knobs by their output only), what is
// refused with `file:line: directive: why`, and that a protected location never comes out open.
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { test } from 'node:test';
import { parseTomlSource } from '../../../src/config/toml-source.ts';
import { parseText } from '../../../src/import/nginx-parse.ts';
import { readOAuth2ProxyConfig } from '../../../src/import/oauth2-proxy.ts';
import { formatSource } from '../../../src/import/toml-writer.ts';
import { translate } from '../../../src/import/translate.ts';

const CFG = [
  'provider = "oidc"',
  'oidc_issuer_url = "https://id.example.test"',
  'client_id = "app"',
  'client_secret = "s3cret"',
  'cookie_secret = "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY="',
  'email_domains = ["example.test"]',
].join('\n');

const SERVER_HEAD = [
  'listen 443 ssl;',
  'server_name app.example.test;',
  'ssl_certificate /certs/app.pem;',
  'ssl_certificate_key /certs/app.key;',
].join('\n');

/** Translates `http { … }` around the text, with one oauth2-proxy .cfg when given. */
function run(http: string, cfg?: string, env: NodeJS.ProcessEnv = {}) {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'gatehouse-translate-'));
  const cfgs = [];
  if (cfg !== undefined) {
    fs.writeFileSync(path.join(dir, 'oauth2-proxy.cfg'), cfg);
    cfgs.push(readOAuth2ProxyConfig(path.join(dir, 'oauth2-proxy.cfg'), env));
  }
  const result = translate({ file: 'nginx.conf', directives: parseText(`http {\n${http}\n}\n`, 'nginx.conf') }, cfgs, {
    prefix: '/etc/nginx',
  });
  const text = (name: string) => result.files.find((f) => f.name === name)?.text;
  const site = () => parseTomlSource(text('sites/app.example.test.toml')!).value as Record<string, any>;
  const refused = result.refused.map((f) => `${formatSource(f.from).replace(dir + '/', '')}: ${f.name}: ${f.why}`);
  return { result, text, site, refused };
}

const server = (body: string) => `server {\n${SERVER_HEAD}\n${body}\n}`;

test('knobs: add_header, proxy_set_header, proxy_pass with a path, allow/deny, return URL, limit_req', () => {
  const { site, refused } = run(
    [
      'limit_req_zone $binary_remote_addr zone=per_ip:10m rate=10r/s;',
      server(
        [
          'add_header X-Frame-Options "DENY" always;',
          'allow 10.0.0.0/8;',
          'deny all;',
          'location /app/ {',
          '  proxy_pass http://127.0.0.1:8080/prefix/;',
          '  proxy_set_header X-Real-IP $remote_addr;',
          '  proxy_set_header X-Tenant "blue";',
          '  proxy_set_header X-Original-URI $request_uri;',
          '  proxy_set_header Accept-Encoding "";',
          '  add_header Cache-Control "no-store";',
          '  limit_req zone=per_ip burst=20 nodelay;',
          '}',
          'location /old/ { return 301 https://new.example.test$request_uri; }',
        ].join('\n'),
      ),
    ].join('\n'),
  );
  assert.deepEqual(refused, []);
  const s = site();
  assert.deepEqual(s.response_headers, { 'X-Frame-Options': 'DENY' });
  assert.deepEqual(s.ip_rules, ['allow 10.0.0.0/8', 'deny all']);
  assert.deepEqual(s.routes[0], {
    path: '/app/',
    upstream: 'http://127.0.0.1:8080',
    rewrite_prefix: '/prefix/',
    request_headers: { 'X-Tenant': 'blue', 'X-Original-URI': '$request_uri', 'Accept-Encoding': '' },
    response_headers: { 'Cache-Control': 'no-store' },
    rate_limit: { rate: '10r/s', burst: 20 },
  });
  assert.deepEqual(s.routes[1], { path: '/old/', redirect: 'https://new.example.test$request_uri', status: 301 });
});

test('knobs: listen proxy_protocol, oauth2-proxy trusted_ips and cookie_domain', () => {
  const { text, site, refused } = run(
    server(
      'listen 8443 ssl proxy_protocol;\nlocation /oauth2/ { proxy_pass http://127.0.0.1:4180; }\nlocation / { auth_request /oauth2/auth; proxy_pass http://127.0.0.1:8080; }\nlocation = /oauth2/auth { proxy_pass http://127.0.0.1:4180; }',
    ),
    `${CFG}\ntrusted_ips = ["10.0.0.0/8"]\ncookie_domains = [".example.test"]`,
  );
  assert.deepEqual(refused, []);
  assert.match(
    text('gatehouse.toml')!,
    /^\[https\]\nlisten = \["0.0.0.0:443", "0.0.0.0:8443"\].*\nproxy_protocol = true {2}# from nginx\.conf:7$/m,
  );
  assert.deepEqual(site().auth.trusted_ips, ['10.0.0.0/8']);
  assert.equal(site().auth.cookie_domain, '.example.test');
});

test('refusals name file, line, directive and why; the rest is still translated', () => {
  const { site, refused } = run(
    [
      'gzip on;',
      server(
        [
          'location / { proxy_pass http://127.0.0.1:8080; try_files $uri /index.html; }',
          'location ~ \\.php$ { fastcgi_pass unix:/run/php.sock; }',
          'location = /exact { return 204; }',
          'location /files/ { alias /srv/files/; }',
          'location /x/ { proxy_pass http://$backend; }',
        ].join('\n'),
      ),
    ].join('\n'),
    undefined,
  );
  assert.deepEqual(refused, [
    'nginx.conf:2: gzip: Gatehouse does not compress responses; an upstream’s compressed answer passes through',
    'nginx.conf:8: try_files: no try_files: a static route serves files and index; single-page-app fallbacks are not supported',
    'nginx.conf:9: location: routes match path prefixes: a regular-expression location translates only when it denies (deny_paths)',
    'nginx.conf:10: location: routes are prefixes: "= /exact" would also take /exact…; it translates only when the prefix location around it does the same',
    'nginx.conf:11: alias: root appends the whole path, as nginx root does: point root at a folder where the path exists',
    'nginx.conf:11: location: no proxy_pass, return or root: nginx would serve files from its default root',
    'nginx.conf:12: proxy_pass: proxy_pass http://$backend: upstreams are http:// or https:// with a host (no variables, no unix sockets)',
  ]);
  assert.deepEqual(
    site().routes.map((r: { path: string }) => r.path),
    ['/'],
  );
});

test('oauth2-proxy options: translated, implied, or refused with the reason the loader gives', () => {
  const { site, refused, result, text } = run(
    server(
      'auth_request /oauth2/auth;\nlocation = /oauth2/auth { proxy_pass http://127.0.0.1:4180; }\nlocation / { proxy_pass http://127.0.0.1:8080; }',
    ),
    `${CFG.replace('["example.test"]', '"example.test"')}\nskip_auth_regex = ["^/health"]\ncode_challenge_method = "S256"\nredis_connection_url = "redis://x"\nhtpasswd_file = "/etc/htpasswd"\nsession_store_type = "redis"\nflush_interval = "1s"`,
  );
  assert.deepEqual(
    refused.map((r) => r.replace(/^.*oauth2-proxy\.cfg/, 'cfg')),
    [
      'cfg:10: htpasswd_file: password logins are not supported; only OpenID Connect',
      'cfg:12: flush_interval: responses are streamed as they come (no buffering)',
    ],
  );
  const global = parseTomlSource(text('gatehouse.toml')!).value as Record<string, any>;
  assert.deepEqual(global.store, { backend: 'redis', url: 'redis://x' }, 'the Redis session store → [store]');
  assert.deepEqual(site().auth.skip_auth_routes, ['^/health']);
  assert.deepEqual(site().auth.email_domains, ['example.test'], 'a lone string where oauth2-proxy takes a list');
  assert.ok(result.implied.some((f) => f.name === 'code_challenge_method'));
  assert.equal(site().auth.client_secret, '${file:secrets/app.example.test.client_secret}');
});

test('fail closed: no protected path comes out open', () => {
  // A skipped prefix with a protected location inside it, and a protected regex location: both stay protected.
  const nested = run(
    server(
      [
        'location = /oauth2/auth { proxy_pass http://127.0.0.1:4180; }',
        'auth_request /oauth2/auth;',
        'location / { proxy_pass http://127.0.0.1:8080; }',
        'location /api/ { auth_request off; proxy_pass http://127.0.0.1:8080; }',
        'location /api/admin/ { proxy_pass http://127.0.0.1:8080; }',
      ].join('\n'),
    ),
    CFG,
  );
  assert.deepEqual(nested.refused, []);
  const skip = nested.site().auth.skip_auth_routes as string[];
  assert.deepEqual(skip, ['^(?!/api/admin/)/api/']);
  assert.ok(new RegExp(skip[0]!).test('/api/users'));
  assert.ok(!new RegExp(skip[0]!).test('/api/admin/users'));

  // auth_request to something that is not oauth2-proxy, or no oauth2-proxy configuration: the site is left out.
  const other = run(
    server(
      'location = /auth { proxy_pass http://127.0.0.1:9000/verify; }\nlocation / { auth_request /auth; proxy_pass http://127.0.0.1:8080; }',
    ),
    CFG,
  );
  assert.equal(other.text('sites/app.example.test.toml'), undefined);
  assert.match(
    other.refused.join('\n'),
    /nginx\.conf:8: auth_request: auth_request to \/auth: only oauth2-proxy's \/oauth2\/auth is translated; the site is left out/,
  );
  const noCfg = run(
    server(
      'location = /oauth2/auth { proxy_pass http://127.0.0.1:4180; }\nlocation / { auth_request /oauth2/auth; proxy_pass http://127.0.0.1:8080; }',
    ),
  );
  assert.equal(noCfg.text('sites/app.example.test.toml'), undefined);
  assert.match(
    noCfg.refused[0]!,
    /^nginx\.conf:2: server: auth_request to oauth2-proxy at http:\/\/127\.0\.0\.1:4180 but no oauth2-proxy \.cfg/,
  );
  assert.equal(
    noCfg.result.files.some((f) => f.name.startsWith('secrets/')),
    false,
  );
});

test('a redirecting HTTPS server, error pages, two certificates, unix sockets', () => {
  const { site, refused } = run(
    [
      'error_page 500 502 503 504 /50x.html;',
      server(
        [
          'ssl_certificate /certs/app-rsa.pem;',
          'ssl_certificate_key /certs/app-rsa.key;',
          'return 301 https://example.test$request_uri;',
        ].join('\n'),
      ),
      'server {\nlisten 443 ssl;\nserver_name api.example.test;\nssl_certificate /c.pem;\nssl_certificate_key /c.key;\nlocation / { proxy_pass http://unix:/run/app.sock; }\n}',
    ].join('\n'),
  );
  assert.deepEqual(refused, [
    'nginx.conf:2: error_page: error pages are Gatehouse’s own (HTML, or JSON when asked)',
    'nginx.conf:8: ssl_certificate: one certificate and key per site (nginx can serve an RSA and an ECDSA one side by side)',
    'nginx.conf:9: ssl_certificate_key: one certificate and key per site (nginx can serve an RSA and an ECDSA one side by side)',
    'nginx.conf:17: proxy_pass: proxy_pass http://unix:/run/app.sock: upstreams are http:// or https:// with a host (no variables, no unix sockets)',
    'nginx.conf:12: server: no location Gatehouse can serve: a site needs at least one route',
  ]);
  assert.deepEqual(site().routes, [{ path: '/', redirect: 'https://example.test$request_uri', status: 301 }]);
  assert.deepEqual(site().tls, { cert: '/certs/app.pem', key: '/certs/app.key' });
});

test('knobs: nginx Plus health_check → the upstream group health_check; expires is refused, not dropped', () => {
  const { site, refused } = run(
    [
      'upstream app { server 127.0.0.1:8080; }',
      server(
        'location / {\n  proxy_pass http://app;\n  health_check uri=/healthz interval=10 fails=3 passes=2;\n  expires 1h;\n}',
      ),
    ].join('\n'),
  );
  assert.deepEqual(refused, ['nginx.conf:11: expires: no cache headers are added; let the upstream send them']);
  assert.deepEqual(site().upstreams.app.health_check, { path: '/healthz', interval: '10s', healthy: 2, unhealthy: 3 });
});

test('error_page 401 to a named location that redirects to /oauth2/start is the login', () => {
  const { site, refused, text } = run(
    server(
      [
        'location /oauth2/ { proxy_pass http://127.0.0.1:4180; }',
        'location = /oauth2/auth { internal; proxy_pass http://127.0.0.1:4180; }',
        'location @error401 { return 302 https://$host/oauth2/start?rd=$scheme://$host$request_uri; }',
        'location / { auth_request /oauth2/auth; error_page 401 = @error401; proxy_pass http://127.0.0.1:8080; }',
        'location /api/ { auth_request /oauth2/auth; proxy_pass http://127.0.0.1:8080; }',
      ].join('\n'),
    ),
    CFG,
  );
  assert.deepEqual(refused, []);
  assert.deepEqual(site().auth.api_routes, ['^/api/']);
  assert.equal(site().auth.skip_auth_routes, undefined);
  assert.match(
    text('sites/app.example.test.toml')!,
    /nginx\.conf:9: location @error401: the login redirect of an error_page/,
  );
});

test('a server on both 80 and 443: plain HTTP is reported, and its address redirects to HTTPS', () => {
  const { text, refused } = run(server('listen 80;\nlocation / { proxy_pass http://127.0.0.1:8080; }'));
  assert.deepEqual(refused, [
    'nginx.conf:7: listen: plain HTTP on a server with content: Gatehouse redirects plain HTTP to HTTPS ([http] listen) instead',
  ]);
  assert.match(text('gatehouse.toml')!, /^\[http\]\nlisten = \["0\.0\.0\.0:80"\] {2}# from nginx\.conf:7;/m);
});

test('a PCRE expression JavaScript cannot read is refused, not written for check to trip on', () => {
  const { site, refused } = run(
    server('location / { proxy_pass http://127.0.0.1:8080; }\nlocation ~ "\\.(?>php|phtml)$" { deny all; }'),
  );
  assert.deepEqual(refused, [
    'nginx.conf:8: location: "\\.(?>php|phtml)$" is a PCRE expression JavaScript\'s RegExp does not read: write it as one',
  ]);
  assert.equal(site().deny_paths, undefined);
});

test('nested locations inherit from the one around them; a nested deny applies under its prefix only', () => {
  const { site, refused } = run(
    server(
      [
        'location /app/ {',
        '  proxy_pass http://127.0.0.1:8080;',
        '  proxy_read_timeout 300;',
        '  location /app/admin/ { proxy_pass http://127.0.0.1:8081; }',
        '  location ~ \\.bak$ { deny all; }',
        '}',
      ].join('\n'),
    ),
  );
  assert.deepEqual(refused, []);
  assert.deepEqual(site().routes, [
    { path: '/app/', upstream: 'http://127.0.0.1:8080', read_timeout: '300s' },
    { path: '/app/admin/', upstream: 'http://127.0.0.1:8081', read_timeout: '300s' },
  ]);
  const deny = site().deny_paths as string[];
  assert.deepEqual(deny, ['^(?=/app/)[^]*?(?:\\.bak$)']);
  assert.ok(new RegExp(deny[0]!).test('/app/x/old.bak'));
  assert.ok(!new RegExp(deny[0]!).test('/other/old.bak'));
});

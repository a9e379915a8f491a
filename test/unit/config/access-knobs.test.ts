// Configuration errors of the nginx-style knobs (response_headers, request_headers, ip_rules, rate_limit, redirect,
// rewrite_prefix, [auth] trusted_ips): each names the file, the line and the key, with a reason.
import assert from 'node:assert/strict';
import path from 'node:path';
import { test } from 'node:test';
import { loadConfig } from '../../../src/config/load.ts';
import { ConfigError, type ConfigProblem } from '../../../src/config/problems.ts';
import { writeConfig } from '../../harness/gatehouse.ts';
import { createTestCa } from '../../harness/pki.ts';

const ca = createTestCa();
const leaf = ca.issue(['a.test']);
const SECRET = 'MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=';

function problemsOf(dir: string): ConfigProblem[] {
  try {
    loadConfig(dir, {});
  } catch (error) {
    assert.ok(error instanceof ConfigError, String(error));
    return error.problems;
  }
  assert.fail('configuration was accepted');
}

const head = `server_names = ["a.test"]
[tls]
cert = ${JSON.stringify(leaf.certFile)}
key = ${JSON.stringify(leaf.keyFile)}
`;

const AUTH = `[auth]
oidc_issuer_url = "https://login.example.com"
client_id = "c"
client_secret = "s"
cookie_secret = "${SECRET}"
email_domains = ["*"]
pass_authorization_header = true
`;

test('every knob problem names file, line and key with a reason, all reported in one load', () => {
  const site = `${head}
[[routes]]
path = "/"
upstream = "http://127.0.0.1:1"
request_headers = { "X-Forwarded-User" = "admin" }

[[routes]]
path = "/b"
upstream = "http://127.0.0.1:1"
request_headers = { "X-Real-IP" = "$remote_address" }

[[routes]]
path = "/c"
upstream = "http://127.0.0.1:1"
ip_rules = ["allow 10.0.0.0/8", "permit 1.2.3.4", "deny 10.0.0.0/33"]

[[routes]]
path = "/d"
redirect = "https://x.test$request_uri"
status = 200

[[routes]]
path = "/e"
redirect = "https://x.test$remote_addr"

[[routes]]
path = "/f"
status = 404
rewrite_prefix = "/x/"

[[routes]]
path = "/g"
upstream = "http://127.0.0.1:1"
response_headers = { "Strict-Transport-Security" = "max-age=1" }

[[routes]]
path = "/h"
upstream = "http://127.0.0.1:1"
request_headers = { "Authorization" = "Basic eA==", "Upgrade" = "$http_upgrade", "X_Auth_Request_Email" = "a@b" }

${AUTH}`;
  const dir = writeConfig({ sites: { a: site } });
  const file = path.join(dir, 'sites', 'a.toml');
  const lines = site.split('\n');
  const lineOf = (text: string) => lines.findIndex((l) => l.includes(text)) + 1;
  const found = problemsOf(dir).map((p) => ({ file: p.file, line: p.line, key: p.key, message: p.message }));
  const expect = (line: string, key: string, message: RegExp) => {
    const hit = found.find((p) => p.key === key);
    assert.ok(hit, `no problem at ${key}:\n${JSON.stringify(found, null, 1)}`);
    assert.equal(hit.file, file);
    assert.equal(hit.line, lineOf(line), key);
    assert.match(hit.message, message, key);
  };
  expect('"X-Forwarded-User" = "admin"', 'routes[0].request_headers.X-Forwarded-User', /identity header/);
  expect('$remote_address', 'routes[1].request_headers.X-Real-IP', /unknown variable \$remote_address \(known: /);
  expect('permit 1.2.3.4', 'routes[2].ip_rules[1]', /"permit 1.2.3.4" is not a rule/);
  expect('deny 10.0.0.0/33', 'routes[2].ip_rules[2]', /is not a rule/);
  expect('status = 200', 'routes[3].status', /301, 302, 303, 307 or 308/);
  expect('$remote_addr"', 'routes[4].redirect', /unknown variable \$remote_addr/);
  expect('rewrite_prefix = "/x/"', 'routes[5].rewrite_prefix', /only a route with an upstream/);
  expect('Strict-Transport-Security', 'routes[6].response_headers.Strict-Transport-Security', /hsts = true/);
  expect('"Authorization" = "Basic', 'routes[7].request_headers.Authorization', /pass_authorization_header/);
  expect('"Upgrade" = ', 'routes[7].request_headers.Upgrade', /describes the connection/);
  expect('X_Auth_Request_Email', 'routes[7].request_headers.X_Auth_Request_Email', /identity header/);
});

test('rate_limit and trusted_ips: their problems name file, line and key', () => {
  const site = `${head}
[[routes]]
path = "/i"
upstream = "http://127.0.0.1:1"
rate_limit = { rate = "10r/h" }

${AUTH}trusted_ips = ["10.0.0.0/8", "nonsense"]
`;
  const dir = writeConfig({ sites: { a: site } });
  const lines = site.split('\n');
  const lineOf = (text: string) => lines.findIndex((l) => l.includes(text)) + 1;
  const found = problemsOf(dir).map((p) => [p.file, p.line, p.key, p.message]);
  const file = path.join(dir, 'sites', 'a.toml');
  assert.deepEqual(found, [
    [file, lineOf('rate = "10r/h"'), 'routes[0].rate_limit.rate', 'a rate is "10r/s" or "600r/m"'],
    [
      file,
      lineOf('trusted_ips'),
      'auth.trusted_ips[1]',
      'not an IP address or CIDR range (examples: "10.0.0.0/8", "::1")',
    ],
  ]);
});

test('the knobs load into the model: merged headers, inherited rules, redirect default 301, rates per second', () => {
  const dir = writeConfig({
    sites: {
      a: `server_names = ["a.test"]
response_headers = { "X-Frame-Options" = "DENY", "X-Site" = "s" }
request_headers = { "X-Real-IP" = "$remote_addr" }
ip_rules = ["allow 10.0.0.0/8", "deny all"]
rate_limit = { rate = "600r/m", burst = 5 }
[tls]
cert = ${JSON.stringify(leaf.certFile)}
key = ${JSON.stringify(leaf.keyFile)}
[[routes]]
path = "/"
upstream = "http://127.0.0.1:1"
response_headers = { "x-frame-options" = "SAMEORIGIN", "X-Powered-By" = "" }
[[routes]]
path = "/old"
redirect = "https://b.test$request_uri"
ip_rules = ["deny all"]
${AUTH.replace('pass_authorization_header = true\n', '')}trusted_ips = ["192.0.2.0/24"]
`,
    },
  });
  const site = loadConfig(dir, {}).sites[0]!;
  const root = site.routes.find((r) => r.path === '/')!;
  const old = site.routes.find((r) => r.path === '/old')!;
  assert.deepEqual(root.responseHeaders, { 'x-frame-options': 'SAMEORIGIN', 'x-site': 's', 'x-powered-by': '' });
  assert.deepEqual(root.requestHeaders, [{ name: 'x-real-ip', value: [{ variable: 'remote_addr' }] }]);
  assert.deepEqual(root.rateLimit, { perSecond: 10, burst: 5 });
  assert.equal(root.ipRules?.length, 2);
  assert.deepEqual(old.ipRules, [{ allow: false, range: 'all' }]);
  assert.deepEqual(old.action, {
    kind: 'redirect',
    status: 301,
    location: ['https://b.test', { variable: 'request_uri' }],
  });
  assert.deepEqual(site.auth?.trustedIps, ['192.0.2.0/24']);
});

test('cookie_domain: every site under it must be inside it and share provider, client and cookie secret', () => {
  const b = ca.issue(['b.apps.test']);
  const other = ca.issue(['other.test']);
  const siteFile = (names: string[], files: typeof b, clientId: string) => `server_names = ${JSON.stringify(names)}
[tls]
cert = ${JSON.stringify(files.certFile)}
key = ${JSON.stringify(files.keyFile)}
[[routes]]
path = "/"
upstream = "http://127.0.0.1:1"
[auth]
oidc_issuer_url = "https://login.example.com"
client_id = "${clientId}"
client_secret = "s"
cookie_secret = "${SECRET}"
email_domains = ["*"]
cookie_domain = ".apps.test"
`;
  const dir = writeConfig({
    sites: {
      a: siteFile(['a.test'], leaf, 'c'),
      b: siteFile(['b.apps.test'], b, 'c'),
      c: siteFile(['other.test'], other, 'other-client'),
    },
  });
  const line = siteFile(['x'], b, 'c').split('\n').indexOf('cookie_domain = ".apps.test"') + 1;
  const found = problemsOf(dir).map((p) => [path.basename(p.file), p.line, p.key, p.message]);
  assert.deepEqual(found, [
    [
      'a.toml',
      line,
      'auth.cookie_domain',
      '"a.test" is not under cookie_domain "apps.test": a browser would not send it the session cookie',
    ],
    [
      'c.toml',
      line,
      'auth.cookie_domain',
      '"other.test" is not under cookie_domain "apps.test": a browser would not send it the session cookie',
    ],
  ]);
  const mismatch = writeConfig({
    sites: { b: siteFile(['b.apps.test'], b, 'c'), c: siteFile(['c.apps.test'], ca.issue(['c.apps.test']), 'x') },
  });
  assert.deepEqual(
    problemsOf(mismatch).map((p) => [path.basename(p.file), p.line, p.key, p.message]),
    [
      [
        'c.toml',
        line,
        'auth.cookie_domain',
        `sites sharing cookie_domain "apps.test" share one login, but client_id differs from ${path.join(mismatch, 'sites', 'b.toml')}:${line}`,
      ],
    ],
  );
});

test('cookie_secret_file and client_secret_file: read from the file (one trailing newline trimmed); never both forms', async () => {
  const fs = await import('node:fs');
  const dir = writeConfig({
    sites: {
      a: `${head}[[routes]]
path = "/"
upstream = "http://127.0.0.1:1"
[auth]
oidc_issuer_url = "https://login.example.com"
client_id = "c"
client_secret_file = "client.secret"
cookie_secret_file = "cookie.secret"
email_domains = ["*"]
`,
    },
  });
  fs.writeFileSync(path.join(dir, 'client.secret'), 'from-a-file\n');
  fs.writeFileSync(path.join(dir, 'cookie.secret'), `${SECRET}\n`);
  const auth = loadConfig(dir, {}).sites[0]!.auth!;
  assert.equal(auth.clientSecret, 'from-a-file');
  assert.equal(auth.secret.length, 32);

  fs.writeFileSync(
    path.join(dir, 'sites', 'a.toml'),
    fs
      .readFileSync(path.join(dir, 'sites', 'a.toml'), 'utf8')
      .replace('client_secret_file = "client.secret"', 'client_secret_file = "missing.secret"\nclient_secret = "s"')
      .replace('cookie_secret_file = "cookie.secret"', 'cookie_secret_file = "missing.secret"'),
  );
  assert.deepEqual(
    problemsOf(dir).map((p) => [p.key, p.message.replace(dir, 'DIR')]),
    [
      ['auth.cookie_secret_file', 'cannot read DIR/missing.secret: ENOENT'],
      ['auth.client_secret_file', 'give client_secret or client_secret_file, not both'],
    ],
  );
});

test('health_check: a zero interval or a bad status names its line', () => {
  const site = `${head}[upstreams.app]
servers = ["http://127.0.0.1:1"]
health_check = { path = "/healthz", interval = "0s", timeout = "2s", status = "2yy" }
[[routes]]
path = "/"
upstream = "app"
`;
  const dir = writeConfig({ sites: { a: site } });
  const line = site.split('\n').findIndex((l) => l.startsWith('health_check')) + 1;
  assert.deepEqual(
    problemsOf(dir).map((p) => [p.line, p.key, p.message]),
    [
      [line, 'upstreams.app.health_check.status', 'a status class such as "2xx", or a status code such as "204"'],
      [line, 'upstreams.app.health_check.interval', 'interval and timeout are above 0'],
    ],
  );
});

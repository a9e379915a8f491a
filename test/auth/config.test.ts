// [auth] configuration: oauth2-proxy names accepted, unsupported oauth2-proxy options refused with a reason, and
// the cross-field rules (secret size, a rule that says who may enter, Entra tenants, loopback-only http issuers).
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { test } from 'node:test';
import { loadConfig } from '../../src/config/load.ts';
import { ConfigError } from '../../src/config/problems.ts';
import { SECRET, toml } from '../harness/gatehouse-auth.ts';
import { createTestCa } from '../harness/pki.ts';

const leaf = createTestCa().issue(['app.test']);

function load(auth: string, global = ''): ReturnType<typeof loadConfig> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'gatehouse-auth-config-'));
  fs.mkdirSync(path.join(dir, 'sites'));
  fs.writeFileSync(path.join(dir, 'gatehouse.toml'), `[session]\nstore = "memory"\n${global}`);
  fs.writeFileSync(
    path.join(dir, 'sites', 'app.toml'),
    `server_names = ["app.test"]
[tls]
cert = "${leaf.certFile}"
key = "${leaf.keyFile}"
[[routes]]
path = "/"
upstream = "http://127.0.0.1:9"
[auth]
${auth}
`,
  );
  return loadConfig(dir);
}

const BASE = toml({
  provider: 'azure',
  oidc_issuer_url: 'https://login.microsoftonline.com/3f6b2d1e-8c4a-4e7b-9d2f-0a1b2c3d4e5f/v2.0',
  client_id: 'c',
  client_secret: 's',
  cookie_secret: SECRET,
});

function problems(auth: string): string[] {
  try {
    load(auth);
  } catch (error) {
    if (error instanceof ConfigError) return error.problems.map((p) => `${p.line} ${p.key}: ${p.message}`);
    throw error;
  }
  return [];
}

test('the reference oauth2-proxy settings load as they are (azure = entra-id)', () => {
  const config = load(`${BASE}
redirect_url = "https://app.test/oauth2/callback"
cookie_secure = true
cookie_http_only = true
cookie_expire = "168h"
cookie_refresh = "24h"
email_domains = ["refol.us"]
set_xauthrequest = true
pass_access_token = true
pass_authorization_header = true`);
  const auth = config.sites[0]!.auth!;
  assert.equal(auth.provider, 'entra-id');
  assert.equal(auth.cookieName, '__Host-_gatehouse');
  assert.equal(auth.cookieExpireMs, 168 * 3_600_000);
  assert.equal(auth.cookieRefreshMs, 24 * 3_600_000);
  assert.equal(auth.secret.length, 32);
  assert.equal(auth.authorizationToken, 'access_token');
});

test('oauth2-proxy options Gatehouse does not support are errors that say so, with line and key', () => {
  const found = problems(
    `${BASE}\nemail_domains = ["*"]\nhttp_address = "127.0.0.1:4180"\ninsecure_oidc_skip_nonce = true\ncookie_domains = [".x"]\nfrobnicate = 1`,
  );
  assert.deepEqual(found, [
    '15 auth.http_address: oauth2-proxy option not supported by Gatehouse: Gatehouse serves every site itself; listeners are set in gatehouse.toml [https]/[http]',
    '16 auth.insecure_oidc_skip_nonce: oauth2-proxy option not supported by Gatehouse: the nonce is always checked',
    '17 auth.cookie_domains: oauth2-proxy option not supported by Gatehouse: Gatehouse takes one domain: cookie_domain = ".example.com"',
    '18 auth.frobnicate: unknown key',
  ]);
});

test('cross-field rules', () => {
  assert.match(problems(BASE).join('\n'), /auth: say who may enter: email_domains = \["\*"\]/);
  assert.match(
    problems(`${BASE.replace(SECRET, 'not a secret of the right size!')}\nemail_domains = ["*"]`).join('\n'),
    /auth\.cookie_secret: must be 16, 24 or 32 bytes/,
  );
  assert.match(
    problems(`${BASE.replace('3f6b2d1e-8c4a-4e7b-9d2f-0a1b2c3d4e5f', 'common')}\nemail_domains = ["*"]`).join('\n'),
    /auth\.allowed_tenants: a common\/organizations issuer admits every Entra tenant/,
  );
  assert.deepEqual(
    problems(
      `${BASE.replace('3f6b2d1e-8c4a-4e7b-9d2f-0a1b2c3d4e5f', 'organizations')}\nemail_domains = ["*"]\nallowed_tenants = ["3F6B2D1E-8c4a-4e7b-9d2f-0a1b2c3d4e5f"]`,
    ),
    [],
  );
  assert.match(
    problems(
      `${BASE.replace('https://login.microsoftonline.com', 'http://idp.example.com')}\nemail_domains = ["*"]`,
    ).join('\n'),
    /auth\.oidc_issuer_url: the issuer must be https:\/\//,
  );
  assert.match(
    problems(`${BASE.replace('azure', 'oidc')}\nemail_domains = ["*"]\nallowed_tenants = ["*"]`).join('\n'),
    /allowed_tenants is for provider = "entra-id"/,
  );
  assert.match(
    problems(`${BASE}\nemail_domains = ["*"]\ncookie_secure = false`).join('\n'),
    /auth\.cookie_secure: Gatehouse cookies are always Secure/,
  );
  assert.match(
    problems(`${BASE}\nemail_domains = ["*"]\nredirect_url = "http://app.test/oauth2/callback"`).join('\n'),
    /auth\.redirect_url: redirect_url must be an https:\/\/ URL/,
  );
  assert.match(
    problems(`${BASE}\nemail_domains = ["*"]\nskip_auth_routes = ["GET=(["]`).join('\n'),
    /auth\.skip_auth_routes\[0\]: the form is/,
  );
  assert.match(
    problems(`${BASE}\nauthenticated_emails_file = "missing.txt"`).join('\n'),
    /auth\.authenticated_emails_file: cannot read/,
  );
  assert.match(problems(`${BASE.replace('azure', 'github')}\nemail_domains = ["*"]`).join('\n'), /auth\.provider/);
});

test('[session] and [metrics] in gatehouse.toml', () => {
  const config = load(`${BASE}\nemail_domains = ["*"]`, '[metrics]\nlisten = "127.0.0.1:9100"\n');
  assert.deepEqual(config.metrics.listen, { host: '127.0.0.1', port: 9100 });
  assert.equal(config.session.store, 'memory');
  assert.ok(path.isAbsolute(config.session.file));
});

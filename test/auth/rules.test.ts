// The pure rules behind the refusals: strict email parsing, label-wise domain rules, the identity rule, the
// anonymous-request classification and skip-auth route parsing.
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { test } from 'node:test';
import { buildAuthSettings } from '../../src/config/auth-settings.ts';
import { authSchema } from '../../src/config/auth-schema.ts';
import { identityFromClaims, strictEmail } from '../../src/auth/identity.ts';
import { Policy } from '../../src/auth/policy.ts';
import { validateReturnUrl } from '../../src/auth/redirect.ts';
import { SECRET } from '../harness/gatehouse-auth.ts';

function settings(extra: Record<string, unknown>) {
  const raw = authSchema.parse({
    oidc_issuer_url: 'https://idp.example.com',
    client_id: 'c',
    client_secret: 's',
    cookie_secret: SECRET,
    ...extra,
  });
  const s = buildAuthSettings(raw, '/tmp', (key, message) => {
    throw new Error(`${key.join('.')}: ${message}`);
  });
  return s!;
}

test('strict email parsing', () => {
  assert.equal(strictEmail('alice@Example.COM'), 'alice@example.com');
  for (const bad of [
    'attacker@evil.com@company.com',
    'a@b',
    '@company.com',
    'alice@',
    'al ice@company.com',
    'alice@company.com\n',
    'alice@-company.com',
    'alice@company..com',
    'a\u0000@company.com',
    42,
    undefined,
  ]) {
    assert.equal(strictEmail(bad), undefined, String(bad));
  }
});

test('the identity rule: email, else (entra) preferred_username/upn as address, else username, oid, sub', () => {
  assert.equal(identityFromClaims({ sub: 's', email: 'a@x.com', preferred_username: 'p' }, 'oidc').user, 'a@x.com');
  assert.equal(
    identityFromClaims({ sub: 's', email: 'a@x.com', email_verified: false, preferred_username: 'p' }, 'oidc').email,
    undefined,
  );
  assert.equal(
    identityFromClaims({ sub: 's', preferred_username: 'p@x.com' }, 'oidc').email,
    undefined,
    'generic OIDC: only the email claim is an email',
  );
  assert.equal(identityFromClaims({ sub: 's', preferred_username: 'p@x.com' }, 'entra-id').email, 'p@x.com');
  assert.equal(identityFromClaims({ sub: 's', upn: 'u@x.com' }, 'entra-id').user, 'u@x.com');
  assert.equal(identityFromClaims({ sub: 's', oid: 'o' }, 'entra-id').user, 'o');
  assert.equal(identityFromClaims({ sub: 's' }, 'oidc').user, 's');
});

test('email_domains are compared label-wise; every configured rule must admit', () => {
  const id = (email: string, groups: string[] = []) => identityFromClaims({ sub: 's', email, groups }, 'oidc');
  const exact = new Policy(settings({ email_domains: ['company.com'] }));
  assert.equal(exact.authorize(id('a@company.com')), undefined);
  assert.equal(exact.authorize(id('a@sub.company.com'))?.rule, 'email_domains');
  assert.equal(exact.authorize(id('a@evilcompany.com'))?.rule, 'email_domains');
  const sub = new Policy(settings({ email_domains: ['.company.com'] }));
  assert.equal(sub.authorize(id('a@eu.company.com')), undefined);
  assert.equal(sub.authorize(id('a@evilcompany.com'))?.rule, 'email_domains');
  const both = new Policy(settings({ email_domains: ['*'], allowed_groups: ['ops'] }));
  assert.equal(both.authorize(id('a@x.com', ['ops'])), undefined);
  assert.equal(both.authorize(id('a@x.com', ['dev']))?.rule, 'allowed_groups');
});

test('return URLs: the site, its other names on the same port, and whitelist_domains only', () => {
  const ok = (rd: string, wl: string[] = []) =>
    validateReturnUrl(rd, 'https://app.test:8443', ['app.test', 'www.app.test'], wl);
  assert.equal(ok('/x?y=1#z'), 'https://app.test:8443/x?y=1#z');
  assert.equal(ok('https://www.app.test:8443/'), 'https://www.app.test:8443/');
  assert.equal(ok('https://www.app.test/'), undefined, 'another port is another origin');
  assert.equal(ok('https://b.example.com/', ['*.example.com']), 'https://b.example.com/');
  assert.equal(ok('https://example.com:9/', ['example.com:*']), 'https://example.com:9/');
  assert.equal(ok('https://notexample.com/', ['.example.com']), undefined);
});

test('authenticated_emails_file admits the listed addresses (case-insensitive) besides email_domains', () => {
  const file = path.join(fs.mkdtempSync(path.join(os.tmpdir(), 'gatehouse-emails-')), 'emails.txt');
  fs.writeFileSync(file, '# admins\nGuest@Partner.test\n\n');
  const policy = new Policy(settings({ authenticated_emails_file: file, email_domains: ['company.com'] }));
  const id = (email: string) => identityFromClaims({ sub: 's', email }, 'oidc');
  assert.equal(policy.authorize(id('guest@partner.test')), undefined);
  assert.equal(policy.authorize(id('a@company.com')), undefined);
  assert.equal(policy.authorize(id('other@partner.test'))?.rule, 'email_domains');
  const fileOnly = new Policy(settings({ authenticated_emails_file: file }));
  assert.equal(fileOnly.authorize(id('a@company.com'))?.rule, 'authenticated_emails_file');
});

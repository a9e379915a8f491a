// The upstream request's headers on an [auth] site: identity headers from the verified session only (client copies
// dropped in every spelling), Gatehouse's cookies removed; and, as they are built once per session object, a
// refreshed session (a new object) or another configuration never gets the headers of the one before.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { buildAuthSettings } from '../../../src/config/auth-settings.ts';
import { authSchema } from '../../../src/config/auth-schema.ts';
import { ownedAuthHeaders, upstreamHeaders } from '../../../src/auth/identity-headers.ts';
import type { Session } from '../../../src/session/sessions.ts';
import { SECRET } from '../../harness/gatehouse-auth.ts';

function auth(extra: Record<string, unknown>) {
  const raw = authSchema.parse({
    oidc_issuer_url: 'https://idp.example.com',
    client_id: 'c',
    client_secret: 's',
    cookie_secret: SECRET,
    email_domains: ['example.com'],
    ...extra,
  });
  const settings = buildAuthSettings(raw, '/tmp', (key, message) => {
    throw new Error(`${key.join('.')}: ${message}`);
  })!;
  return { settings, ownedHeaders: ownedAuthHeaders(settings) };
}

const facts = {
  peerAddress: '192.0.2.7',
  clientAddress: '192.0.2.7',
  peerIsTrusted: false,
  proto: 'https' as const,
  host: 'app.example.com',
  requestId: 'r1',
};

function session(user: string, groups: string[], accessToken: string): Session {
  const now = Date.now();
  return {
    id: 'x'.repeat(43),
    identity: { user, email: user, groups, roles: [], sub: 'sub-1' },
    accessToken,
    refreshable: true,
    createdAt: now,
    expiresAt: now + 3_600_000,
    refreshedAt: now,
  };
}

test('identity headers come from the session, never the client; a refreshed session and another configuration get their own', () => {
  const site = auth({ set_xauthrequest: true, pass_access_token: true });
  const incoming = {
    host: 'app.example.com',
    'x-auth-request-user': 'mallory@example.com',
    x_forwarded_email: 'mallory@example.com',
    cookie: `a=1; ${site.settings.cookieName}=secret; b=2`,
  };
  const alice = session('alice@example.com', ['staff'], 'token-1');
  for (let i = 0; i < 2; i++) {
    const headers = upstreamHeaders(incoming, facts, site, alice);
    assert.equal(headers['x-auth-request-user'], 'alice@example.com', `request ${i + 1}`);
    assert.equal(headers['x-auth-request-groups'], 'staff');
    assert.equal(headers['x-forwarded-access-token'], 'token-1');
    assert.equal(headers.x_forwarded_email, undefined, 'a client copy in another spelling is dropped');
    assert.equal(headers.cookie, 'a=1; b=2', "Gatehouse's cookie is removed");
  }

  // A refresh makes a new session object (new identity, new token): its headers, not the cached ones.
  const refreshed = { ...alice, identity: { ...alice.identity, groups: ['staff', 'admins'] }, accessToken: 'token-2' };
  const after = upstreamHeaders(incoming, facts, site, refreshed);
  assert.equal(after['x-auth-request-groups'], 'staff,admins');
  assert.equal(after['x-forwarded-access-token'], 'token-2');

  // The same session under another configuration (a reload): that configuration's headers only.
  const reloaded = auth({ set_xauthrequest: false, pass_access_token: false, pass_user_headers: true });
  const other = upstreamHeaders(incoming, facts, reloaded, alice);
  assert.equal(other['x-auth-request-user'], undefined);
  assert.equal(other['x-forwarded-access-token'], undefined);
  assert.equal(other['x-forwarded-user'], 'alice@example.com');

  // Only Gatehouse's cookies (the session's and a login's): no Cookie header at all.
  const name = site.settings.cookieName;
  const onlyOurs = upstreamHeaders(
    { host: 'app.example.com', cookie: `${name}=s; ${name}_csrf=x` },
    facts,
    site,
    alice,
  );
  assert.equal('cookie' in onlyOurs, false);

  // No session (trusted_ips, skip_auth_routes): no identity header at all, client copies still dropped.
  const anonymous = upstreamHeaders(incoming, facts, site);
  assert.equal(anonymous['x-auth-request-user'], undefined);
  assert.equal(anonymous['x-forwarded-access-token'], undefined);
});

// Entra ID specifics against the emulator (test/harness/fake-entra.ts): tenant issuers and the {tenantid} template,
// members without email, PKCE without discovery advertising it, group overage through Graph paging (and failing
// closed), AADSTS errors, refresh rotation and interaction_required.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { startEchoUpstream } from '../harness/echo-upstream.ts';
import { startFakeEntra, TENANT_A, type FakeEntra } from '../harness/fake-entra.ts';
import { Browser, freePort, SECRET, startGatehouse, type TestGatehouse } from '../harness/gatehouse-auth.ts';

const API = { accept: 'application/json', 'sec-fetch-mode': 'cors', 'sec-fetch-dest': 'empty' };

async function setup(
  t: { after(fn: () => unknown): void },
  tenant: string,
  auth: Record<string, string | boolean | string[] | undefined>,
): Promise<{ entra: FakeEntra; gh: TestGatehouse; origin: string; browser(): Browser }> {
  const backend = await startEchoUpstream();
  const port = await freePort();
  const origin = `https://app.test:${port}`;
  const entra = await startFakeEntra({
    clientId: '6cb04018-a3f5-46a7-b995-940c78f5aef3',
    clientSecret: 'entra~secret',
    redirectUris: [`${origin}/oauth2/callback`],
  });
  const gh = await startGatehouse({
    port,
    fetch: entra.fetch,
    sites: [
      {
        names: ['app.test'],
        upstream: backend.url,
        auth: {
          provider: 'entra-id',
          oidc_issuer_url: `https://login.microsoftonline.com/${tenant}/v2.0`,
          client_id: '6cb04018-a3f5-46a7-b995-940c78f5aef3',
          client_secret: 'entra~secret',
          cookie_secret: SECRET,
          scope: 'openid profile email offline_access User.Read',
          ...auth,
        },
      },
    ],
  });
  t.after(async () => {
    await gh.stop();
    await entra.close();
    await backend.close();
  });
  return { entra, gh, origin, browser: () => new Browser(gh.caPem, entra.rewrite) };
}

const headersOf = async (b: Browser, origin: string) =>
  (await b.request(`${origin}/x`, { headers: API })).json<{ headers: Record<string, string> }>().headers;

test('single tenant: a member without email logs in; PKCE is sent although discovery does not advertise it', async (t) => {
  const s = await setup(t, TENANT_A, { email_domains: ['contoso.com'] });
  const b = s.browser();
  const page = await b.navigate(`${s.origin}/`, 'member');
  assert.equal(page.status, 200);
  const sent = s.entra.seen.authorize[0]!;
  assert.equal(sent.get('code_challenge_method'), 'S256');
  assert.ok(sent.get('nonce') && sent.get('state'));
  assert.equal(sent.get('response_mode'), 'query');
  const h = await headersOf(b, s.origin);
  assert.equal(
    h['x-auth-request-user'],
    'AbeLi@contoso.com',
    'email absent: preferred_username (an address) stands in',
  );
  assert.equal(h['x-auth-request-email'], 'AbeLi@contoso.com');
  assert.equal(h['x-auth-request-groups'], 'b1aef995-6b55-4ac6-bbfe-e829810e9352');

  s.entra.persona = 'phone';
  const phone = await s.browser().navigate(`${s.origin}/`);
  assert.equal(phone.status, 403, 'no address at all: an email rule refuses cleanly');
  assert.match(phone.body, /no valid email address/);
});

test('multi-tenant (organizations): allowed tenant passes; another tenant, a non-GUID tid are refused', async (t) => {
  const s = await setup(t, 'organizations', {
    allowed_tenants: [TENANT_A],
    allowed_groups: ['b1aef995-6b55-4ac6-bbfe-e829810e9352'],
    allowed_roles: ['Proxy.Admin'],
  });
  assert.equal((await s.browser().navigate(`${s.origin}/`)).status, 200);
  s.entra.persona = 'other';
  const other = await s.browser().navigate(`${s.origin}/`);
  assert.equal(other.status, 403);
  assert.match(other.body, /rule: allowed_tenants/);
  s.entra.persona = 'badtid';
  const bad = await s.browser().navigate(`${s.origin}/`);
  assert.equal(bad.status, 403);
  assert.match(bad.body, /no valid tenant id/);
});

test('group overage: groups come from Graph transitiveMemberOf (paged); a Graph failure denies with a clear error', async (t) => {
  // 250 group ids are 9.2 KB per header: one family only (X-Auth-Request-*), or Node's 16 KB header limit upstream answers 431.
  const s = await setup(t, TENANT_A, {
    allowed_groups: ['00000000-0000-4000-8000-000000000249'],
    pass_user_headers: false,
  });
  s.entra.persona = 'overage';
  const b = s.browser();
  assert.equal((await b.navigate(`${s.origin}/`)).status, 200, 'admitted by a group only Graph knows (the 250th)');
  assert.equal(s.entra.seen.graphCalls, 3, '250 groups = 3 pages of 100');
  assert.equal((await headersOf(b, s.origin))['x-auth-request-groups']!.split(',').length, 250);
  const cookie = b.sessionCookie(s.origin)!;
  assert.ok(cookie[0].length + cookie[1].length + 1 < 120, 'the cookie stays small however many groups');

  s.entra.persona = 'overageDenied';
  const denied = await s.browser().navigate(`${s.origin}/`);
  assert.equal(denied.status, 403);
  assert.match(
    denied.body,
    /Group membership could not be read from Microsoft Graph \(Microsoft Graph answered 403 \(Authorization_RequestDenied\)/,
  );
});

test('AADSTS errors: refused authorization, interaction_required on refresh ends the session; refresh rotates tokens', async (t) => {
  const s = await setup(t, TENANT_A, { email_domains: ['*'] });
  s.entra.persona = 'unassigned';
  const refused = await s.browser().navigate(`${s.origin}/`);
  assert.equal(refused.status, 403);
  assert.match(
    refused.body,
    /The identity provider answered &#34;access_denied&#34;|The identity provider answered "access_denied"/,
  );
  assert.doesNotMatch(refused.body, /AADSTS/, "the provider's description is logged, not shown");

  s.entra.persona = 'member';
  const b = s.browser();
  await b.navigate(`${s.origin}/`);
  const auth = s.gh.runtime.siteList[0]!.auth!;
  const value = b.sessionCookie(s.origin)![1];
  const first = (await auth.sessions.fromCookie(value))!;
  const firstTokens = await auth.sessions.tokens(first);
  await auth.sessions.save({ ...first, accessExpiresAt: Date.now() });
  assert.equal((await b.request(`${s.origin}/x`, { headers: API })).status, 200);
  const second = (await auth.sessions.fromCookie(value))!;
  const secondTokens = await auth.sessions.tokens(second);
  assert.notEqual(
    secondTokens.refreshToken,
    firstTokens.refreshToken,
    'the rotated refresh token replaces the old one',
  );
  assert.notEqual(secondTokens.accessToken, firstTokens.accessToken);

  // Front-channel logout from Entra (hidden iframe, no cookie, sid only) ends the session server-side.
  const frontChannel = await s
    .browser()
    .request(`${s.origin}/oauth2/frontchannel_logout?sid=00a1b2c3-d4e5-f6a7-b8c9-d0e1f2a3b4c5`);
  assert.equal(frontChannel.status, 200);
  assert.equal(frontChannel.headers['content-security-policy'], 'frame-ancestors https://login.microsoftonline.com');
  assert.equal(
    (await b.request(`${s.origin}/x`, { headers: API })).status,
    401,
    'the session ended with the provider session',
  );

  s.entra.persona = 'mfa';
  const m = s.browser();
  await m.navigate(`${s.origin}/`);
  const mv = m.sessionCookie(s.origin)![1];
  await auth.sessions.save({ ...(await auth.sessions.fromCookie(mv))!, accessExpiresAt: Date.now() });
  assert.equal(
    (await m.request(`${s.origin}/x`, { headers: API })).status,
    401,
    'interaction_required: 401 for XHR, never a redirect',
  );
  const logged = s.gh.logs.find((l) => l.msg === 'refresh refused by the provider; session ended') as
    { provider_error?: { error_codes?: number[]; trace_id?: string } } | undefined;
  assert.deepEqual(logged?.provider_error?.error_codes, [50076]);
  assert.ok(logged?.provider_error?.trace_id);
});

test('tenant issuer: a token whose tid is another tenant is refused, at the callback and as a bearer token', async (t) => {
  const s = await setup(t, TENANT_A, { email_domains: ['*'], skip_jwt_bearer_tokens: true });
  s.entra.persona = 'crossTenant';
  const page = await s.browser().navigate(`${s.origin}/`);
  assert.equal(page.status, 403, 'iss names the configured tenant, tid another one');
  assert.match(page.body, /rule: tenant/);

  const bearer = async (persona: string) =>
    (
      await s.browser().request(`${s.origin}/x`, {
        headers: { ...API, authorization: `Bearer ${(await s.entra.issue(persona)).id_token}` },
      })
    ).status;
  assert.equal(await bearer('member'), 200, 'a token of the configured tenant passes');
  assert.equal(await bearer('crossTenant'), 401, 'the same check holds for bearer tokens');
});

// [auth] cookie_domain (oauth2-proxy's cookie_domains): one login covers the sibling sites under the domain. The
// session cookie is then a __Secure- cookie with Domain; without it, a __Host- cookie bound to one host.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { startEchoUpstream } from '../harness/echo-upstream.ts';
import { Browser, freePort, SECRET, startGatehouse } from '../harness/gatehouse-auth.ts';
import { startOP } from '../harness/op.ts';

/** $http_NAME reads the request as Gatehouse forwards it: no session cookie in it, the identity from the session. */
const REQUEST_HEADERS = 'request_headers = { "X-Cookie" = "$http_cookie", "X-User" = "$http_x_auth_request_user" }';
const JSON_ACCEPT = { accept: 'application/json', 'sec-fetch-mode': 'cors', 'sec-fetch-dest': 'empty' };

async function twoSites(t: import('node:test').TestContext, cookieDomain?: string) {
  const backend = await startEchoUpstream();
  t.after(() => backend.close());
  const port = await freePort();
  const origin = (host: string) => `https://${host}:${port}`;
  const op = await startOP({
    redirectUris: [`${origin('a.apps.test')}/oauth2/callback`, `${origin('b.apps.test')}/oauth2/callback`],
    postLogoutRedirectUris: [`${origin('a.apps.test')}/`],
  });
  t.after(() => op.close());
  const auth = {
    oidc_issuer_url: op.issuer,
    client_id: 'gatehouse',
    client_secret: 'gatehouse-secret',
    cookie_secret: SECRET,
    email_domains: ['example.test'],
    cookie_domain: cookieDomain,
  };
  const gh = await startGatehouse({
    port,
    sites: [
      { names: ['a.apps.test'], upstream: backend.url, auth, top: REQUEST_HEADERS },
      { names: ['b.apps.test'], upstream: backend.url, auth, top: REQUEST_HEADERS },
    ],
  });
  t.after(() => gh.stop());
  return { gh, a: origin('a.apps.test'), b: origin('b.apps.test') };
}

test('cookie_domain: the session cookie is __Secure- with Domain, and a login on one site is a login on its sibling; sign-out clears it for both', async (t) => {
  const { gh, a, b } = await twoSites(t, '.apps.test');
  const browser = new Browser(gh.caPem);
  let setCookie: string[] = [];
  const landed = await browser.navigate(`${a}/`, 'alice', {
    stopAt: (url) => url.pathname === '/oauth2/callback',
  });
  setCookie = landed.headers['set-cookie'] ?? [];
  const session = setCookie.find((c) => c.startsWith('__Secure-_gatehouse='));
  assert.ok(session, setCookie.join('\n'));
  assert.match(session, /; Path=\/; Domain=apps\.test; Secure; HttpOnly; SameSite=Lax/);
  const [name, value] = browser.sessionCookie(a)!;
  assert.equal(name, '__Secure-_gatehouse');

  // The browser sends a Domain cookie to the sibling too.
  const sibling = await browser.request(`${b}/x`, {
    headers: { ...JSON_ACCEPT, cookie: `${name}=${value}; app=1`, 'x-auth-request-user': 'mallory' },
  });
  assert.equal(sibling.status, 200);
  const seen = sibling.json<{ headers: Record<string, string> }>().headers;
  assert.equal(seen['x-auth-request-email'], 'alice@example.test');
  assert.equal(seen.cookie, 'app=1', 'the session cookie never reaches the upstream');
  assert.equal(seen['x-cookie'], 'app=1', 'nor through $http_cookie');
  assert.equal(seen['x-user'], 'alice@example.test');

  const out = await browser.request(`${a}/oauth2/sign_out?rd=/`, { headers: { cookie: `${name}=${value}` } });
  assert.match(String(out.headers['set-cookie']), /__Secure-_gatehouse=; Path=\/; Domain=apps\.test;.*Max-Age=0/);
  assert.equal(
    (await browser.request(`${b}/x`, { headers: { ...JSON_ACCEPT, cookie: `${name}=${value}` } })).status,
    401,
  );
});

test('without cookie_domain each site has its own __Host- login: a sibling does not take the cookie', async (t) => {
  const { gh, a, b } = await twoSites(t);
  const browser = new Browser(gh.caPem);
  assert.equal((await browser.navigate(`${a}/`, 'alice')).status, 200);
  const [name, value] = browser.sessionCookie(a)!;
  assert.equal(name, '__Host-_gatehouse');
  const sibling = await browser.request(`${b}/x`, { headers: { ...JSON_ACCEPT, cookie: `${name}=${value}` } });
  assert.equal(sibling.status, 401);
});

// A refusal test for every rule: email domain, multi-@ email, group, role, tampered cookie, expired session,
// replayed/forged state, spoofed identity headers (case/_/. variants, Connection-named), skip-auth bypasses, and
// the challenge (401 for everything that is not a top-level page navigation, WebSocket included).
import assert from 'node:assert/strict';
import { test } from 'node:test';
import WebSocket from 'ws';
import { startAuthFixture } from '../harness/auth-fixture.ts';

const JSON_ACCEPT = { accept: 'application/json', 'sec-fetch-mode': 'cors', 'sec-fetch-dest': 'empty' };

test('policy refusals name the rule and create no session', async (t) => {
  const f = await startAuthFixture();
  t.after(() => f.close());
  const wrongDomain = await f.browser().navigate(`${f.origin}/`, 'bob');
  assert.equal(wrongDomain.status, 403);
  assert.match(wrongDomain.body, /bob@other\.test is not admitted by this site&#39;s email_domains/);
  assert.doesNotMatch(wrongDomain.body, /eyJ/, 'no token in the page');

  const b = f.browser();
  const multiAt = await b.navigate(`${f.origin}/`, 'mallory');
  assert.equal(multiAt.status, 403, 'attacker@evil.com@example.test is not an example.test address');
  assert.match(multiAt.body, /no valid email address/);
  assert.equal(b.sessionCookie(f.origin), undefined);
});

test('allowed_groups and allowed_roles refuse users outside them', async (t) => {
  const groups = await startAuthFixture({ auth: { email_domains: undefined, allowed_groups: ['admins'] } });
  t.after(() => groups.close());
  assert.equal((await groups.browser().navigate(`${groups.origin}/`, 'alice')).status, 200);
  const carol = await groups.browser().navigate(`${groups.origin}/`, 'carol');
  assert.equal(carol.status, 403);
  assert.match(carol.body, /rule: allowed_groups/);

  const roles = await startAuthFixture({ auth: { email_domains: undefined, allowed_roles: ['Proxy.Admin'] } });
  t.after(() => roles.close());
  assert.equal((await roles.browser().navigate(`${roles.origin}/`, 'alice')).status, 200);
  assert.match((await roles.browser().navigate(`${roles.origin}/`, 'carol')).body, /rule: allowed_roles/);
});

test('tampered cookie, expired session, replayed and forged state are refused', async (t) => {
  const f = await startAuthFixture();
  t.after(() => f.close());
  const b = f.browser();
  let callback: URL | undefined;
  await b.navigate(`${f.origin}/`, 'alice', {
    stopAt: (u) => {
      if (u.pathname === '/oauth2/callback') callback = u;
      return false;
    },
  });
  assert.ok(callback);
  const [name, value] = b.sessionCookie(f.origin)!;
  assert.equal((await b.request(`${f.origin}/x`, { headers: JSON_ACCEPT })).status, 200);

  // Tampered: one character of the id or of the signature changed.
  // Last character: A/B/C/D differ only in the unused low bits of base64url, so they spell the same bytes.
  const lastChar = ['A', 'B', 'C', 'D'].filter((c) => !value.endsWith(c)).map((c) => `${value.slice(0, -1)}${c}`);
  for (const bad of [
    `A${value.slice(1)}`,
    ...lastChar,
    value.split('.')[0]!,
    `${value}x`,
    `${value.slice(0, 44)}${value.slice(44).toUpperCase()}`,
  ]) {
    const res = await b.request(`${f.origin}/x`, { headers: { ...JSON_ACCEPT, cookie: `${name}=${bad}` } });
    assert.equal(res.status, 401, `tampered cookie ${bad}`);
    assert.equal(res.json().error, 'ERR_AUTH_REQUIRED');
  }

  // Replayed state: the same callback URL a second time (its login cookie is gone, the code is spent).
  const replay = await b.request(callback);
  assert.equal(replay.status, 400);
  assert.match(replay.body, /ERR_AUTH_STATE_INVALID/);
  // Forged state, and a real state presented by another browser (no login cookie there).
  const forged = new URL(callback);
  forged.searchParams.set('state', 'forged-state-value');
  assert.equal((await b.request(forged)).status, 400);
  assert.equal((await f.browser().request(callback)).status, 400);

  // Expired: cookie_expire has passed (moved into the past here) → anonymous, row deleted.
  const auth = f.gh.runtime.siteList[0]!.auth!;
  const session = (await auth.sessions.fromCookie(value))!;
  await auth.sessions.save({ ...session, expiresAt: Date.now() - 1 });
  assert.equal((await b.request(`${f.origin}/x`, { headers: JSON_ACCEPT })).status, 401);
  auth.sessions.dropCache();
  assert.equal(await auth.sessions.fromCookie(value), undefined, 'the expired session was deleted from the store');
});

test('spoofed identity headers are removed in every variant; Gatehouse cookies never go upstream', async (t) => {
  const f = await startAuthFixture();
  t.after(() => f.close());
  const b = f.browser();
  await b.navigate(`${f.origin}/`, 'alice');
  const spoofs = {
    'X-Auth-Request-User': 'evil',
    x_auth_request_email: 'evil@example.test',
    'X.Auth.Request.Groups': 'admins',
    'X-AUTH-REQUEST-PREFERRED-USERNAME': 'evil',
    'x-forwarded-user': 'evil',
    X_Forwarded_Email: 'evil@example.test',
    'x.forwarded.groups': 'root',
    'X-Auth-Request-Access-Token': 'forged',
    x_forwarded_access_token: 'forged',
    connection: 'X-Auth-Request-User, x_forwarded_user',
  };
  const res = await b.request(`${f.origin}/echo`, {
    headers: {
      ...JSON_ACCEPT,
      ...spoofs,
      cookie: `app=1; ${[...b.cookies(new URL(f.origin).host)].map(([k, v]) => `${k}=${v}`).join('; ')}; __Host-_gatehouse_login_x=1`,
    },
  });
  const h = res.json<{ headers: Record<string, string> }>().headers;
  assert.equal(h['x-auth-request-user'], 'alice@example.test', 'a Connection-named identity header is still ours');
  assert.equal(h['x-auth-request-email'], 'alice@example.test');
  assert.equal(h['x-auth-request-groups'], 'admins,developers');
  assert.equal(h['x-forwarded-user'], 'alice@example.test');
  assert.notEqual(h['x-auth-request-access-token'], 'forged');
  for (const name of Object.keys(h)) assert.ok(!/[_.]/.test(name), `no ${name} alias reaches the upstream`);
  assert.equal(h.cookie, 'app=1', "only the application's own cookie is forwarded");

  // On a skip-auth route no identity is set and the spoofed ones are still removed.
  const open = (await f.browser().request(`${f.origin}/public/x`, { headers: { ...JSON_ACCEPT, ...spoofs } })).json<{
    headers: Record<string, string>;
  }>().headers;
  assert.equal(
    Object.keys(open).filter((k) => /auth-request|forwarded-(user|email|groups|access)/.test(k.replace(/[_.]/g, '-')))
      .length,
    0,
  );
});

test('skip_auth_routes match the normalized path only: no bypass by query, %23, dot segments or method', async (t) => {
  const f = await startAuthFixture();
  t.after(() => f.close());
  const anon = f.browser();
  assert.equal((await anon.request(`${f.origin}/public/readme`, { headers: JSON_ACCEPT })).status, 200);
  assert.equal((await anon.request(`${f.origin}/health`, { headers: JSON_ACCEPT })).status, 200);
  for (const path of [
    '/private?x=/public/',
    '/private?/public/',
    '/private%23/public/',
    '/private#/public/',
    '/public/../private',
    '/x/public/',
    '/healthz',
    '/health/..',
    '/%70rivate?health',
  ]) {
    const res = await anon.request(`${f.origin}${path}`, { headers: JSON_ACCEPT });
    assert.equal(res.status, 401, path);
  }
  // %2F is never a separator; a route must allow it (test/integration/path-confusion.test.ts has the whole corpus).
  assert.equal((await anon.request(`${f.origin}/public%2f..%2fprivate`, { headers: JSON_ACCEPT })).status, 400);
  assert.equal(
    (await anon.request(`${f.origin}/health`, { method: 'POST', headers: JSON_ACCEPT })).status,
    401,
    'GET=^/health$ admits GET only',
  );
});

test('challenge: 302 only for page navigations; 401 JSON for fetch, XHR, APIs, sub-resources, POST and WebSocket', async (t) => {
  const f = await startAuthFixture();
  t.after(() => f.close());
  const b = f.browser();
  assert.equal((await b.request(`${f.origin}/page`)).status, 302);
  const cases: [string, Record<string, string>, string?][] = [
    ['Accept: application/json', { accept: 'application/json', 'sec-fetch-mode': '', 'sec-fetch-dest': '' }],
    ['fetch (Sec-Fetch-Mode: cors)', { 'sec-fetch-mode': 'cors', 'sec-fetch-dest': 'empty', accept: '*/*' }],
    ['XMLHttpRequest', { 'x-requested-with': 'XMLHttpRequest', 'sec-fetch-mode': '', 'sec-fetch-dest': '' }],
    [
      'favicon',
      { 'sec-fetch-mode': 'no-cors', 'sec-fetch-dest': 'image', accept: 'image/avif,image/webp,*/*' },
      '/favicon.ico',
    ],
    [
      'iframe-less sub-resource without fetch metadata',
      { 'sec-fetch-mode': '', 'sec-fetch-dest': '', accept: 'image/png' },
      '/logo.png',
    ],
    ['api_routes', {}, '/api/items'],
  ];
  const anon = f.browser();
  for (const [label, headers, path] of cases) {
    const res = await anon.request(`${f.origin}${path ?? '/data'}`, { headers });
    assert.equal(res.status, 401, label);
    assert.equal(res.headers['content-type'], 'application/json', label);
    assert.equal(res.headers.location, undefined, label);
  }
  assert.equal(
    (
      await anon.request(`${f.origin}/form`, {
        method: 'POST',
        body: 'a=1',
        headers: { 'content-type': 'application/x-www-form-urlencoded' },
      })
    ).status,
    401,
  );
  assert.equal([...anon.cookies(new URL(f.origin).host).keys()].length, 0, 'no request above started a login');

  const ws = (cookie?: string) =>
    new Promise<{ status?: number; hello?: Record<string, unknown> }>((resolve) => {
      const options = {
        ca: f.gh.caPem,
        servername: 'app.test',
        headers: cookie ? { cookie } : {},
        lookup: ((_h: string, o: { all?: boolean }, cb: (...a: unknown[]) => void) =>
          o.all ? cb(null, [{ address: '127.0.0.1', family: 4 }]) : cb(null, '127.0.0.1', 4)) as never,
      };
      const socket = new WebSocket(`wss://app.test:${f.gh.port}/ws`, options as WebSocket.ClientOptions);
      socket.on('unexpected-response', (_req, res) => {
        resolve({ status: res.statusCode });
        socket.terminate();
      });
      socket.on('message', (data) => {
        resolve({ status: 101, hello: JSON.parse(String(data)) });
        socket.close();
      });
      socket.on('error', () => resolve({}));
    });
  assert.equal((await ws()).status, 401, 'anonymous WebSocket: 401, never a redirect');
  await b.navigate(`${f.origin}/`, 'alice');
  const [name, value] = b.sessionCookie(f.origin)!;
  const open = await ws(`${name}=${value}`);
  assert.equal(open.status, 101);
  assert.equal(open.hello?.user, 'alice@example.test', 'identity headers on the upgrade');
});

test('/oauth2/start refuses open redirects and keeps same-site ones', async (t) => {
  const f = await startAuthFixture({ auth: { whitelist_domains: ['.trusted.test', 'exact.test:8443'] } });
  t.after(() => f.close());
  const b = f.browser();
  const bad = [
    '//evil.com',
    '/\\evil.com',
    '\\\\evil.com',
    '/%2F/evil.com',
    '/%5Cevil.com',
    '/%09/evil.com',
    '/%0d%0a/evil.com',
    'https://evil.com/',
    'http://app.test/',
    'javascript:alert(1)',
    'data:text/html,x',
    'https://app.test.evil.com/',
    'https://evil.com\\@app.test/',
    'https://app.test@evil.com/',
    'https://user:pw@app.test/',
    'https://eviltrusted.test/',
    'https://trusted.test.evil.com/',
    'https://exact.test/',
    'https://exact.test:9443/',
    ' https://app.test/',
    '/ /evil.com',
    'https:evil.com',
    '//%65vil.com',
    '/\t/evil.com',
    'https://evil.com%2F@app.test/',
  ];
  for (const rd of bad) {
    const res = await b.request(`${f.origin}/oauth2/start?rd=${encodeURIComponent(rd)}`);
    assert.equal(res.status, 400, `rd=${JSON.stringify(rd)} must be refused`);
  }
  for (const [rd, expected] of [
    ['/docs?a=1', `${f.origin}/docs?a=1`],
    [`${f.origin}/x`, `${f.origin}/x`],
    ['https://a.trusted.test/p', 'https://a.trusted.test/p'],
    ['https://trusted.test/', 'https://trusted.test/'],
    ['https://exact.test:8443/', 'https://exact.test:8443/'],
  ]) {
    const res = await b.request(`${f.origin}/oauth2/start?rd=${encodeURIComponent(rd!)}`);
    assert.equal(res.status, 302, rd);
    const back = await b.navigate(res.headers.location!, 'alice', { stopAt: (u) => u.pathname === '/oauth2/callback' });
    assert.equal(back.headers.location, expected);
  }
});

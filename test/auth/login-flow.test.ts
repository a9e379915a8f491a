// The login loop against a real OpenID Provider: challenge → provider → callback → page with identity headers,
// logout, sessions that survive a restart, and parallel logins in several tabs.
import assert from 'node:assert/strict';
import fs from 'node:fs';
import http2 from 'node:http2';
import path from 'node:path';
import { test } from 'node:test';
import { startAuthFixture } from '../harness/auth-fixture.ts';

test('login → proxied page with identity headers → logout → protected again', async (t) => {
  const f = await startAuthFixture();
  t.after(() => f.close());
  const b = f.browser();

  const first = await b.request(`${f.origin}/docs/page?x=1`);
  assert.equal(first.status, 302);
  const idp = new URL(first.headers.location!);
  assert.equal(idp.origin, f.op.issuer);
  assert.equal(idp.searchParams.get('code_challenge_method'), 'S256');
  assert.ok(idp.searchParams.get('code_challenge') && idp.searchParams.get('state') && idp.searchParams.get('nonce'));
  assert.equal(idp.searchParams.get('redirect_uri'), `${f.origin}/oauth2/callback`);

  const page = await b.navigate(idp, 'alice', { stopAt: (u) => u.pathname === '/docs/page' });
  assert.equal(page.status, 200);
  assert.equal(page.url.href, `${f.origin}/docs/page?x=1`, 'the original URL is restored after login');
  const h = (await b.request(`${f.origin}/echo`, { headers: { accept: 'application/json' } })).json<{
    headers: Record<string, string>;
  }>().headers;
  assert.equal(h['x-auth-request-user'], 'alice@example.test');
  assert.equal(h['x-auth-request-email'], 'alice@example.test');
  assert.equal(h['x-auth-request-preferred-username'], 'alice@example.test');
  assert.equal(h['x-auth-request-groups'], 'admins,developers');
  assert.equal(h['x-forwarded-user'], 'alice@example.test');
  assert.equal(h['x-forwarded-email'], 'alice@example.test');
  assert.ok(h['x-auth-request-access-token']);
  assert.equal(h.authorization, `Bearer ${h['x-auth-request-access-token']}`, 'the access token is the default bearer');
  assert.equal(h.cookie, undefined, 'no Gatehouse cookie reaches the upstream');

  const [cookieName, cookieValue] = b.sessionCookie(f.origin)!;
  assert.equal(cookieName, '__Host-_gatehouse');
  assert.equal(JSON.parse(page.body).url, '/docs/page?x=1', 'the upstream answered the restored URL');
  console.log(`# session cookie: ${cookieName}=${cookieValue} (${cookieName.length + 1 + cookieValue.length} bytes)`);

  const info = await b.request(`${f.origin}/oauth2/userinfo`, { headers: { accept: 'application/json' } });
  assert.equal(info.status, 200);
  assert.deepEqual(info.json().groups, ['admins', 'developers']);
  assert.equal((await b.request(`${f.origin}/oauth2/auth`)).status, 202);
  assert.equal((await b.request(`${f.origin}/oauth2/auth`)).headers['x-auth-request-user'], 'alice@example.test');

  // Logout: the session is gone server-side and the cookie is cleared, then RP-initiated logout at the provider.
  const stolen = `${cookieName}=${cookieValue}`;
  const out = await b.request(`${f.origin}/oauth2/sign_out`);
  assert.equal(out.status, 302);
  assert.ok(out.headers['set-cookie']!.some((c) => c.startsWith(`${cookieName}=;`) && /Max-Age=0/.test(c)));
  const end = new URL(out.headers.location!);
  assert.equal(end.origin, f.op.issuer);
  assert.ok(end.searchParams.get('id_token_hint'));
  assert.equal(end.searchParams.get('post_logout_redirect_uri'), `${f.origin}/`);
  const back = await b.navigate(end, 'alice', { stopAt: (u) => u.origin === f.origin });
  assert.equal(back.url.href, `${f.origin}/`);
  assert.equal(back.status, 302, 'the site is protected again');
  const replay = await b.request(`${f.origin}/x`, {
    headers: { cookie: stolen, accept: 'application/json', 'sec-fetch-mode': 'cors' },
  });
  assert.equal(replay.status, 401, 'the old cookie no longer works: the session was deleted server-side');
  assert.equal((await b.request(`${f.origin}/oauth2/auth`)).status, 401);
});

test('several tabs logging in at once all succeed, each back on its own page', async (t) => {
  const f = await startAuthFixture();
  t.after(() => f.close());
  const b = f.browser();
  const starts = await Promise.all(['/a', '/b', '/c'].map((p) => b.request(`${f.origin}${p}`)));
  assert.deepEqual(
    starts.map((r) => r.status),
    [302, 302, 302],
  );
  const loginCookies = [...b.cookies(new URL(f.origin).host).keys()].filter((k) => k.includes('_login_'));
  assert.equal(loginCookies.length, 3, 'one login-state cookie per state');
  const pages = [];
  for (const start of starts)
    pages.push(
      await b.navigate(start.headers.location!, 'alice', {
        stopAt: (u) => u.origin === f.origin && !u.pathname.startsWith('/oauth2/'),
      }),
    );
  assert.deepEqual(
    pages.map((p) => [p.status, p.url.pathname]),
    [
      [200, '/a'],
      [200, '/b'],
      [200, '/c'],
    ],
  );
  assert.equal(
    [...b.cookies(new URL(f.origin).host).keys()].filter((k) => k.includes('_login_')).length,
    0,
    'login cookies are cleared',
  );
});

test('sessions survive a restart (SQLite store), encrypted at rest', async (t) => {
  const f = await startAuthFixture();
  t.after(() => f.close());
  const b = f.browser();
  await b.navigate(`${f.origin}/`, 'alice');
  assert.equal((await b.request(`${f.origin}/oauth2/auth`)).status, 202);
  await f.restart();
  assert.equal((await b.request(`${f.origin}/oauth2/auth`)).status, 202, 'the same cookie works after a restart');
  const db = fs.readFileSync(path.join(f.gh.dir, 'state', 'sessions.sqlite'));
  const wal = fs.existsSync(path.join(f.gh.dir, 'state', 'sessions.sqlite-wal'))
    ? fs.readFileSync(path.join(f.gh.dir, 'state', 'sessions.sqlite-wal'))
    : Buffer.alloc(0);
  for (const file of [db, wal])
    assert.ok(
      !file.includes('alice@example.test') && !file.includes('eyJ'),
      'no identity or token in clear text at rest',
    );
});

test('cookie_samesite = "strict": the callback continues with a same-site page instead of a redirect', async (t) => {
  const f = await startAuthFixture({ auth: { cookie_samesite: 'strict' } });
  t.after(() => f.close());
  const b = f.browser();
  const landing = await b.navigate(`${f.origin}/deep/link?q=1`, 'alice');
  assert.equal(landing.status, 200);
  assert.equal(landing.url.pathname, '/oauth2/callback');
  assert.match(landing.body, new RegExp(`content="0;url=${f.origin}/deep/link\\?q=1"`));
  assert.ok(
    landing.headers['set-cookie']!.some((c) => c.startsWith('__Host-_gatehouse=') && /SameSite=Strict/.test(c)),
  );
  assert.equal((await b.request(`${f.origin}/deep/link?q=1`)).status, 200);
});

test('sign_in page, and bearer JWTs with skip_jwt_bearer_tokens (issuer + audience checked, policy applied)', async (t) => {
  const f = await startAuthFixture({ auth: { skip_jwt_bearer_tokens: true } });
  t.after(() => f.close());
  const signIn = await f.browser().request(`${f.origin}/oauth2/sign_in?rd=%2Fdocs`);
  assert.equal(signIn.status, 200);
  assert.match(signIn.body, /href="\/oauth2\/start\?rd=https%3A%2F%2Fapp\.test%3A\d+%2Fdocs"/);

  const b = f.browser();
  await b.navigate(`${f.origin}/`, 'alice');
  const auth = f.gh.runtime.siteList[0]!.auth!;
  const value = b.sessionCookie(f.origin)![1];
  const idToken = (await auth.sessions.tokens((await auth.sessions.fromCookie(value))!)).idToken!;
  const api = f.browser();
  const ok = await api.request(`${f.origin}/api/v1`, {
    headers: { authorization: `Bearer ${idToken}`, accept: 'application/json' },
  });
  assert.equal(ok.status, 200);
  assert.equal(ok.json<{ headers: Record<string, string> }>().headers['x-auth-request-user'], 'alice@example.test');
  const [h, p, s] = idToken.split('.') as [string, string, string];
  const forged = `${h}.${Buffer.from(JSON.stringify({ ...JSON.parse(Buffer.from(p, 'base64url').toString()), email: 'root@example.test' })).toString('base64url')}.${s}`;
  for (const token of [forged, `${h}.${p}.${s.slice(0, -4)}AAAA`, 'not.a.jwt']) {
    assert.equal(
      (
        await api.request(`${f.origin}/api/v1`, {
          headers: { authorization: `Bearer ${token}`, accept: 'application/json' },
        })
      ).status,
      401,
    );
  }
});

test('HTTP/2: a session cookie sent as one of several cookie fields is found, and removed before forwarding', async (t) => {
  const f = await startAuthFixture();
  t.after(() => f.close());
  const b = f.browser();
  await b.navigate(`${f.origin}/`, 'alice');
  const [name, value] = b.sessionCookie(f.origin)!;
  const session = http2.connect(`https://127.0.0.1:${f.gh.port}`, { servername: 'app.test', ca: f.gh.caPem });
  t.after(() => session.close());
  const body = await new Promise<string>((resolve, reject) => {
    const req = session.request({
      ':path': '/h2',
      ':authority': new URL(f.origin).host,
      accept: 'application/json',
      cookie: ['theme=dark', `${name}=${value}`, 'lang=en'],
    });
    let text = '';
    req.setEncoding('utf8');
    req.on('data', (d: string) => (text += d));
    req.on('end', () => resolve(text));
    req.on('error', reject);
    req.end();
  });
  const h = (JSON.parse(body) as { headers: Record<string, string> }).headers;
  assert.equal(h['x-auth-request-user'], 'alice@example.test');
  assert.equal(h.cookie, 'theme=dark; lang=en');
});

test('/oauth2/auth and /oauth2/userinfo never hand a token to the browser, with pass_access_token and the Bearer header on', async (t) => {
  const f = await startAuthFixture({ auth: { set_xauthrequest: true } });
  t.after(() => f.close());
  const b = f.browser();
  await b.navigate(`${f.origin}/`, 'alice');
  const auth = f.gh.runtime.siteList[0]!.auth!;
  const stored = await auth.sessions.tokens((await auth.sessions.fromCookie(b.sessionCookie(f.origin)![1]))!);
  const tokens = [stored.accessToken, stored.idToken, stored.refreshToken].filter((token) => token !== undefined);
  assert.equal(tokens.length, 3, 'access, ID and refresh token');
  // What fetch('/oauth2/auth') in a page of the site sees: every response header but Set-Cookie, and the body.
  const sameOrigin = {
    accept: '*/*',
    'sec-fetch-mode': 'cors',
    'sec-fetch-site': 'same-origin',
    'sec-fetch-dest': 'empty',
  };
  const check = await b.request(`${f.origin}/oauth2/auth`, { headers: sameOrigin });
  assert.equal(check.status, 202);
  assert.equal(check.headers['x-auth-request-user'], 'alice@example.test', 'the identity headers are there');
  const info = await b.request(`${f.origin}/oauth2/userinfo`, { headers: sameOrigin });
  assert.equal(info.status, 200);
  for (const reply of [check, info]) {
    const seen = JSON.stringify(reply.headers) + reply.body;
    assert.deepEqual(
      tokens.filter((token) => seen.includes(token)),
      [],
      `${reply.url.pathname} carries no token`,
    );
  }
  // The upstream still gets them.
  const upstream = (await b.request(`${f.origin}/x`, { headers: { accept: 'application/json' } })).json<{
    headers: Record<string, string>;
  }>().headers;
  assert.equal(upstream['x-auth-request-access-token'], stored.accessToken);
  assert.equal(upstream.authorization, `Bearer ${stored.accessToken}`);
});

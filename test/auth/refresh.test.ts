// Refresh is driven by the access token's expiry and happens once per session however many requests arrive at
// the same moment; a refresh the provider refuses (invalid_grant) ends the session.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { startAuthFixture } from '../harness/auth-fixture.ts';
import { until } from '../harness/wait.ts';

const API = { accept: 'application/json', 'sec-fetch-mode': 'cors', 'sec-fetch-dest': 'empty' };

test('50 parallel requests with an expiring access token cause exactly one refresh at the provider', async (t) => {
  const f = await startAuthFixture();
  t.after(() => f.close());
  const b = f.browser();
  await b.navigate(`${f.origin}/`, 'alice');
  const auth = f.gh.runtime.siteList[0]!.auth!;
  const value = b.sessionCookie(f.origin)![1];
  const before = (await auth.sessions.fromCookie(value))!;
  const oldToken = before.accessToken;
  // The access token is about to expire (as it would be an hour after login).
  await auth.sessions.save({ ...before, accessExpiresAt: Date.now() + 1_000 });
  assert.equal(f.op.refreshGrants(), 0);

  const replies = await Promise.all(Array.from({ length: 50 }, () => b.request(`${f.origin}/api/x`, { headers: API })));
  assert.deepEqual(new Set(replies.map((r) => r.status)), new Set([200]));
  assert.equal(f.op.refreshGrants(), 1, 'one refresh_token grant reached the provider');
  assert.equal(auth.refreshes, 1);
  const tokens = new Set(
    replies.map((r) => r.json<{ headers: Record<string, string> }>().headers['x-auth-request-access-token']),
  );
  assert.equal(tokens.size, 1, 'every request went upstream with the refreshed token');
  assert.ok(!tokens.has(oldToken!));
  const after = (await auth.sessions.fromCookie(value))!;
  assert.ok(after.accessExpiresAt! > Date.now() + 30 * 60_000, 'the new expiry comes from the new token');
  assert.equal(after.expiresAt, before.expiresAt, 'refresh never extends the session past cookie_expire');

  // The next requests need no refresh.
  await b.request(`${f.origin}/api/x`, { headers: API });
  assert.equal(f.op.refreshGrants(), 1);
});

test('cookie_refresh refreshes by session age; invalid_grant ends the session (401, then a new login)', async (t) => {
  const f = await startAuthFixture({ auth: { cookie_refresh: '1h' } });
  t.after(() => f.close());
  const b = f.browser();
  await b.navigate(`${f.origin}/`, 'alice');
  const auth = f.gh.runtime.siteList[0]!.auth!;
  const value = b.sessionCookie(f.origin)![1];
  const session = (await auth.sessions.fromCookie(value))!;
  await auth.sessions.save({ ...session, refreshedAt: Date.now() - 2 * 3_600_000 });
  assert.equal((await b.request(`${f.origin}/api/x`, { headers: API })).status, 200);
  assert.equal(f.op.refreshGrants(), 1, 'refreshed because the session was last refreshed over cookie_refresh ago');

  // The provider revokes the grant: the next refresh gets invalid_grant and the session ends.
  const current = (await auth.sessions.fromCookie(value))!;
  const rt = await f.op.provider.RefreshToken.find((await auth.sessions.tokens(current)).refreshToken!);
  assert.ok(rt);
  await rt.destroy();
  await auth.sessions.save({ ...current, accessExpiresAt: Date.now() - 1 });
  const refused = await b.request(`${f.origin}/api/x`, { headers: API });
  assert.equal(refused.status, 401);
  auth.sessions.dropCache();
  assert.equal(await auth.sessions.fromCookie(value), undefined, 'the session was deleted');
  assert.ok(f.gh.logs.some((l) => l.msg === 'refresh refused by the provider; session ended'));
  assert.equal((await b.request(`${f.origin}/page`)).status, 302, 'a navigation starts a new login');
});

test('a 30 s access token is not refreshed on every request; it is once a quarter of its lifetime is left', async (t) => {
  const f = await startAuthFixture({ accessTokenTtl: 30 });
  t.after(() => f.close());
  const b = f.browser();
  await b.navigate(`${f.origin}/`, 'alice');
  for (let i = 0; i < 5; i++) assert.equal((await b.request(`${f.origin}/api/x`, { headers: API })).status, 200);
  assert.equal(
    f.op.refreshGrants(),
    0,
    'a fresh 30 s token is not due (a fixed 60 s margin made every request refresh)',
  );

  // 5 s left of 30: inside the last quarter, so the next request refreshes, once.
  const auth = f.gh.runtime.siteList[0]!.auth!;
  const value = b.sessionCookie(f.origin)![1];
  await auth.sessions.save({ ...(await auth.sessions.fromCookie(value))!, accessExpiresAt: Date.now() + 5_000 });
  for (let i = 0; i < 3; i++) assert.equal((await b.request(`${f.origin}/api/x`, { headers: API })).status, 200);
  assert.equal(f.op.refreshGrants(), 1);
});

test('a provider that answers a refresh late: the request gives up with 503, the late answer is kept (rotated refresh token), a signed-out session stays out', async (t) => {
  const f = await startAuthFixture({ rotateRefreshTokens: true });
  t.after(() => f.close());
  const auth = f.gh.runtime.siteList[0]!.auth!;
  const kept = f.browser();
  await kept.navigate(`${f.origin}/`, 'alice');
  const gone = f.browser();
  await gone.navigate(`${f.origin}/`, 'carol');
  const [name, value] = kept.sessionCookie(f.origin)!;
  const goneValue = gone.sessionCookie(f.origin)![1];
  const before = await auth.sessions.tokens((await auth.sessions.fromCookie(value))!);
  // Both access tokens have expired: a request must wait for the refresh, and cannot be answered with the old token.
  for (const v of [value, goneValue])
    await auth.sessions.save({ ...(await auth.sessions.fromCookie(v))!, accessExpiresAt: Date.now() - 1 });

  // The provider grants both refreshes at once but holds its answers back longer than a request waits (10 s).
  f.op.tokenDelayMs = 12_000;
  const answered = f.op.tokenAnswers.length;
  const late = kept.request(`${f.origin}/api/x`, { headers: API });
  const goneLate = gone.request(`${f.origin}/api/x`, { headers: API });
  await until(() => f.op.tokenAnswers.length === answered + 2, 'both refreshes granted at the provider');
  f.op.tokenDelayMs = 0;
  const issued = f.op.tokenAnswers.slice(answered);
  // One user signs out while the provider still holds the answer to their refresh.
  assert.equal((await gone.request(`${f.origin}/oauth2/sign_out`)).status, 302);

  const reply = await late;
  assert.equal(reply.status, 503, 'the expired token is not forwarded: the request gives up when the wait ends');
  assert.equal(reply.json().error, 'ERR_AUTH_PROVIDER_UNAVAILABLE');
  assert.equal(reply.headers['retry-after'], '5');
  await goneLate;

  // The answers arrive after every request gave up: the signed-in user's new tokens are stored (the provider has
  // used up the old refresh token), the signed-out user's are not.
  const session = async () => (await auth.sessions.fromCookie(value))!;
  await until(async () => {
    const stored = (await auth.sessions.tokens(await session())).refreshToken;
    return issued.some((a) => a.refresh_token === stored);
  }, 'the late refresh was stored');
  assert.notEqual((await auth.sessions.tokens(await session())).refreshToken, before.refreshToken);
  await until(
    () => f.gh.logs.some((l) => l.msg === 'refresh completed after the session ended; its tokens are dropped'),
    'the late refresh of the signed-out session was dropped',
  );
  auth.sessions.dropCache();
  assert.equal(
    await auth.sessions.fromCookie(goneValue),
    undefined,
    'a refresh that completes after the sign-out does not bring the session back',
  );
  assert.equal(
    (await gone.request(`${f.origin}/api/x`, { headers: { ...API, cookie: `${name}=${goneValue}` } })).status,
    401,
  );

  const now = await kept.request(`${f.origin}/api/x`, { headers: API });
  assert.equal(now.status, 200);
  assert.ok(
    issued.some(
      (a) => a.access_token === now.json<{ headers: Record<string, string> }>().headers['x-auth-request-access-token'],
    ),
    "the late answer's access token is forwarded",
  );
  // And the next refresh uses the rotated refresh token: the session lives on.
  const grants = f.op.refreshGrants();
  await auth.sessions.save({ ...(await session()), accessExpiresAt: Date.now() - 1 });
  assert.equal((await kept.request(`${f.origin}/api/x`, { headers: API })).status, 200);
  assert.equal(f.op.refreshGrants(), grants + 1);
  assert.ok(!f.gh.logs.some((l) => l.msg === 'refresh refused by the provider; session ended'));
});

/** Polls check every 20 ms until it holds; fails after ms. */

// Refresh is driven by the access token's expiry and happens once per session however many requests arrive at
// the same moment; a refresh the provider refuses (invalid_grant) ends the session.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { startAuthFixture } from '../helpers/auth-fixture.ts';

const API = { accept: 'application/json', 'sec-fetch-mode': 'cors', 'sec-fetch-dest': 'empty' };

test('50 parallel requests with an expiring access token cause exactly one refresh at the provider', async (t) => {
  const f = await startAuthFixture();
  t.after(() => f.close());
  const b = f.browser();
  await b.navigate(`${f.origin}/`, 'alice');
  const auth = f.gh.runtime.siteList[0]!.auth!;
  const value = b.sessionCookie(f.origin)![1];
  const before = auth.sessions.fromCookie(value)!;
  const oldToken = before.accessToken;
  // The access token is about to expire (as it would be an hour after login).
  auth.sessions.save({ ...before, accessExpiresAt: Date.now() + 1_000 });
  assert.equal(f.op.refreshGrants(), 0);

  const replies = await Promise.all(Array.from({ length: 50 }, () => b.request(`${f.origin}/api/x`, { headers: API })));
  assert.deepEqual(new Set(replies.map((r) => r.status)), new Set([200]));
  assert.equal(f.op.refreshGrants(), 1, 'one refresh_token grant reached the provider');
  assert.equal(auth.refreshes, 1);
  const tokens = new Set(replies.map((r) => r.json<{ headers: Record<string, string> }>().headers['x-auth-request-access-token']));
  assert.equal(tokens.size, 1, 'every request went upstream with the refreshed token');
  assert.ok(!tokens.has(oldToken!));
  const after = auth.sessions.fromCookie(value)!;
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
  const session = auth.sessions.fromCookie(value)!;
  auth.sessions.save({ ...session, refreshedAt: Date.now() - 2 * 3_600_000 });
  assert.equal((await b.request(`${f.origin}/api/x`, { headers: API })).status, 200);
  assert.equal(f.op.refreshGrants(), 1, 'refreshed because the session was last refreshed over cookie_refresh ago');

  // The provider revokes the grant: the next refresh gets invalid_grant and the session ends.
  const current = auth.sessions.fromCookie(value)!;
  const rt = await f.op.provider.RefreshToken.find(auth.sessions.tokens(current).refreshToken!);
  assert.ok(rt);
  await rt.destroy();
  auth.sessions.save({ ...current, accessExpiresAt: Date.now() - 1 });
  const refused = await b.request(`${f.origin}/api/x`, { headers: API });
  assert.equal(refused.status, 401);
  auth.sessions.dropCache();
  assert.equal(auth.sessions.fromCookie(value), undefined, 'the session was deleted');
  assert.ok(f.gh.logs.some((l) => l.msg === 'refresh refused by the provider; session ended'));
  assert.equal((await b.request(`${f.origin}/page`)).status, 302, 'a navigation starts a new login');
});

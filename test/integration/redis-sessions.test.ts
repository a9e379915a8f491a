// [store] backend = "redis": several Gatehouse instances share sessions through one real redis-server. Two runtimes in
// this process stand in for two machines (the real-process proof with HAProxy is redis-cluster.test.ts): a session made
// on one is known to the other, a logout on one is refused by the other as soon as the change is published, the
// tokens rest sealed in Redis, a cached session costs no Redis command, and Redis down, frozen or restarted never
// logs anybody out.
import assert from 'node:assert/strict';
import type { TestContext } from 'node:test';
import { test } from 'node:test';
import { startEchoUpstream } from '../harness/echo-upstream.ts';
import { runtimeReadiness } from '../../src/http/runtime.ts';
import { Browser, freePort, opAuth, startGatehouse, type TestGatehouse } from '../harness/gatehouse-auth.ts';
import { startOP, type OP } from '../harness/op.ts';
import { startRedis, type RedisServer } from '../harness/redis.ts';
import { until } from '../harness/wait.ts';

const API = { accept: 'application/json', 'sec-fetch-mode': 'cors', 'sec-fetch-dest': 'empty' };

interface Pair {
  a: TestGatehouse;
  b: TestGatehouse;
  op: OP;
  redis: RedisServer;
  browser: Browser;
  cookie: string;
  value: string;
  at(gatehouse: TestGatehouse, path?: string): ReturnType<Browser['request']>;
}

async function twoInstances(
  t: TestContext,
  options: { grace?: string; accessTokenTtl?: number; rotate?: boolean } = {},
): Promise<Pair> {
  const redis = await startRedis();
  const backend = await startEchoUpstream();
  const [portA, portB] = [await freePort(), await freePort()];
  const op = await startOP({
    redirectUris: [`https://app.test:${portA}/oauth2/callback`],
    postLogoutRedirectUris: [`https://app.test:${portA}/`],
    accessTokenTtl: options.accessTokenTtl,
    rotateRefreshTokens: options.rotate,
    sid: true,
  });
  const global = `workers = 1\n[store]\nbackend = "redis"\nurl = "${redis.url}"\ncommand_timeout = "300ms"\ngrace = "${options.grace ?? '5m'}"\nprefix = "t:"\n`;
  const site = [
    {
      names: ['app.test'],
      upstream: backend.url,
      auth: {
        ...opAuth(op.issuer),
        email_domains: ['*'],
        pass_access_token: true,
        redirect_url: `https://app.test:${portA}/oauth2/callback`,
      },
    },
  ];
  const a = await startGatehouse({ port: portA, sites: site, global });
  const b = await startGatehouse({ port: portB, dir: a.dir, sites: site, global });
  t.after(async () => {
    await a.stop();
    await b.stop();
    await op.close();
    await backend.close();
    await redis.stop();
  });
  const browser = new Browser(a.caPem);
  assert.equal((await browser.navigate(`https://app.test:${portA}/`, 'alice')).status, 200);
  const [name, value] = browser.sessionCookie(`https://app.test:${portA}`)!;
  const cookie = `${name}=${value}`;
  const at = (gatehouse: TestGatehouse, path = '/x') =>
    browser.request(`https://app.test:${gatehouse.port}${path}`, { headers: { ...API, cookie } });
  return { a, b, op, redis, browser, cookie, value, at };
}

function auth(gatehouse: TestGatehouse) {
  return gatehouse.runtime.siteList[0]!.auth!;
}

/** Calls Redis has served for one command so far (INFO commandstats). */
async function calls(redis: RedisServer, command: string): Promise<number> {
  const stats = await redis.command('INFO', 'commandstats');
  return Number(new RegExp(`cmdstat_${command}:calls=(\\d+)`).exec(stats)?.[1] ?? 0);
}

test('redis: a session made on one instance serves on the other, sealed at rest with the session end as TTL; a cached session costs no Redis command; a logout on one is refused on the other', async (t) => {
  const { a, b, redis, at, op } = await twoInstances(t);
  assert.equal((await at(b)).status, 200, 'B knows the session A created');

  // At rest: one hash per session, no token in clear, Redis drops it at the session's end.
  const keys = (await redis.command('KEYS', 't:session:*')).split('\r\n').filter((line) => line.startsWith('t:'));
  assert.equal(keys.length, 1);
  const dump = await redis.command('HGETALL', keys[0]!);
  const tokens = op.tokenAnswers[0]!;
  for (const token of [tokens.access_token, tokens.refresh_token, tokens.id_token])
    assert.equal(dump.includes(String(token)), false, 'no token is stored in clear');
  const ttl = Number((await redis.command('PTTL', keys[0]!)).replace(/^:/, ''));
  assert.ok(ttl > 0 && ttl <= 7 * 86_400_000, `TTL ${ttl} ms: the session's end (cookie_expire 168h)`);

  // The hot path: 20 requests on a cached session, on each instance, read nothing from Redis.
  const before = (await calls(redis, 'hmget')) + (await calls(redis, 'hget')) + (await calls(redis, 'eval'));
  for (let i = 0; i < 20; i++) {
    assert.equal((await at(a)).status, 200);
    assert.equal((await at(b)).status, 200);
  }
  const after = (await calls(redis, 'hmget')) + (await calls(redis, 'hget')) + (await calls(redis, 'eval'));
  assert.equal(after - before, 0, 'no Redis command for a cached, valid session');

  // Logout at A: B learns it from the published end, before any request reaches B.
  const endedAtB: string[] = [];
  auth(b).sessions.onEnded((key) => endedAtB.push(key));
  const signOut = await at(a, '/oauth2/sign_out');
  assert.equal(signOut.status, 302);
  await until(() => endedAtB.length === 1, 'B is told of the end');
  assert.equal((await at(b)).status, 401, 'B refuses the signed-out session');
  assert.equal((await at(a)).status, 401);
  assert.equal(keys[0], `t:session:${endedAtB[0]}`);
  assert.equal(await redis.command('EXISTS', keys[0]!), ':0', 'gone from Redis');
});

test('redis frozen, down or restarted: cached sessions keep working for grace, the uncached get a 503 page (cookie kept), /ready says degraded, and everything recovers by itself', async (t) => {
  const { a, b, redis, at, browser } = await twoInstances(t);
  assert.equal((await at(a)).status, 200);
  assert.equal((await at(b)).status, 200);
  // Bob logs in on A only: B has never cached his session.
  const bobBrowser = new Browser(a.caPem);
  assert.equal((await bobBrowser.navigate(`https://app.test:${a.port}/`, 'bob')).status, 200);
  const bob = bobBrowser.sessionCookie(`https://app.test:${a.port}`)!.join('=');
  const bobAt = (gatehouse: TestGatehouse) =>
    browser.request(`https://app.test:${gatehouse.port}/x`, { headers: { ...API, cookie: bob } });

  const alice = auth(b).sessions;
  const [, value] = browser.sessionCookie(`https://app.test:${a.port}`)!;
  for (const phase of ['frozen', 'down'] as const) {
    // Only Alice is cached on B.
    alice.dropCache();
    assert.equal((await at(b)).status, 200);
    if (phase === 'frozen') redis.pause();
    else await redis.down();
    await until(
      () => runtimeReadiness(b.runtime).store?.state === 'degraded',
      `/ready reports the store degraded (${phase})`,
    );
    // The [metrics] listener's /ready: still 200, and says what is degraded since when and why.
    const ready = await fetch(`http://127.0.0.1:${b.listening.metrics!.port}/ready`);
    assert.equal(ready.status, 200, 'a degraded store does not take the instance out of the balancer');
    const body = (await ready.json()) as { ready: boolean; store?: { state: string; since: string; reason?: string } };
    assert.equal(body.store?.state, 'degraded');
    assert.ok(body.store?.reason && Date.parse(body.store.since) > 0, 'and says why and since when');

    // Cached: served, also once its revalidation is due, for as long as the grace lasts (5 min here).
    assert.equal((await at(b)).status, 200, `cached session serves (${phase})`);
    assert.ok(await alice.fromCookie(value, Date.now() + 60_000), `past the revalidation interval (${phase})`);
    await assert.rejects(async () => alice.fromCookie(value, Date.now() + 6 * 60_000), {
      name: 'StoreUnavailableError',
    });

    // Uncached: a clear 503 with an error id that is in the log, Retry-After, and no cleared cookie.
    const refused = await bobAt(b);
    assert.equal(refused.status, 503, `uncached session (${phase})`);
    assert.equal(refused.json().error, 'ERR_STORE_UNAVAILABLE');
    assert.equal(refused.headers['set-cookie'], undefined, 'the cookie is kept');
    assert.equal(refused.headers['retry-after'], '5');
    const id = refused.json().request_id;
    await until(
      () => b.logs.some((line) => line.req_id === id && line.error === 'ERR_STORE_UNAVAILABLE'),
      'the log line with the error id',
    );

    // A new login cannot be stored: 503, not a half login.
    const newcomer = new Browser(a.caPem);
    const login = await newcomer.navigate(`https://app.test:${a.port}/`, 'carol');
    assert.equal(login.status, 503);
    assert.match(login.body, /ERR_STORE_UNAVAILABLE/);
    assert.equal(newcomer.sessionCookie(`https://app.test:${a.port}`), undefined);

    if (phase === 'frozen') redis.resume();
    else await redis.up();
    await until(() => runtimeReadiness(b.runtime).store?.state === 'up', `/ready reports the store up (${phase})`);
    // Nobody was logged out: both users on both instances.
    await until(async () => (await bobAt(b)).status === 200, `the uncached session serves again (${phase})`);
    for (const gatehouse of [a, b]) {
      assert.equal((await at(gatehouse)).status, 200);
      assert.equal((await bobAt(gatehouse)).status, 200);
    }
  }
});

test('redis: an expired access token with requests on both instances: one refresh at the provider, every request forwards the new token, none the expired one', async (t) => {
  const { a, b, op, at, value } = await twoInstances(t, { rotate: true });
  assert.equal((await at(b)).status, 200);
  const stale = (await auth(a).sessions.fromCookie(value))!;
  const expiredToken = stale.accessToken;
  await auth(a).sessions.save({ ...stale, accessExpiresAt: Date.now() - 1 });
  // B has dropped its copy once the change is published.
  await until(
    async () => ((await auth(b).sessions.fromCookie(value))?.accessExpiresAt ?? Infinity) < Date.now(),
    'B sees the expired token',
  );
  const grants = op.refreshGrants();
  const replies = await Promise.all(Array.from({ length: 40 }, (_, i) => at(i % 2 ? a : b)));
  assert.deepEqual(new Set(replies.map((r) => r.status)), new Set([200]));
  assert.equal(op.refreshGrants() - grants, 1, 'one refresh_token grant for both instances');
  assert.equal(auth(a).refreshes + auth(b).refreshes, 1);
  const forwarded = new Set(
    replies.map((r) => r.json<{ headers: Record<string, string> }>().headers['x-forwarded-access-token']),
  );
  assert.equal(forwarded.size, 1, 'every request carries the same (new) token');
  assert.match(String([...forwarded][0]), /\S{20,}/, 'a token was forwarded');
  assert.equal(forwarded.has(expiredToken!), false, 'no request carries the expired token');
});

test('redis: a refresh answered invalid_grant because another instance refreshed meanwhile (a lost lease) keeps the session that instance saved', async (t) => {
  const { a, b, op, redis, at, value } = await twoInstances(t, { rotate: true });
  const session = (await auth(a).sessions.fromCookie(value))!;
  await auth(a).sessions.save({ ...session, accessExpiresAt: Date.now() + 5_000 });
  await until(
    async () => ((await auth(b).sessions.fromCookie(value))?.accessExpiresAt ?? Infinity) < Date.now() + 10_000,
    'B sees the refresh due',
  );
  // The provider holds the first token request back until released: A's refresh, with the refresh token it read.
  const gate = op.holdNextTokenRequest();
  const grants = op.refreshGrants();
  const atA = at(a);
  await until(gate.held, "A's refresh reaches the provider");
  // A loses its lease (as after a long pause): B takes it and refreshes with the same, still unused, refresh token.
  assert.equal(await redis.command('DEL', `t:lease:${auth(a).sessions.key(session)}`), ':1');
  assert.equal((await at(b)).status, 200);
  assert.equal(op.refreshGrants() - grants, 1, 'B refreshed');
  // A's request now finds its refresh token spent (rotated by B): invalid_grant. The session B saved stands.
  gate.release();
  assert.equal((await atA).status, 200);
  await until(
    () => a.logs.some((line) => line.msg === 'refresh refused; another process refreshed'),
    'A reads the store again before ending anything',
  );
  assert.equal(await redis.command('EXISTS', `t:session:${auth(a).sessions.key(session)}`), ':1');
  assert.equal((await at(b)).status, 200, 'still signed in');
});

test('redis: a refresh whose save finds Redis frozen is served from memory and saved once Redis answers again (a rotated refresh token is not lost)', async (t) => {
  const { a, b, op, redis, at, value } = await twoInstances(t, { rotate: true });
  const session = (await auth(a).sessions.fromCookie(value))!;
  await auth(a).sessions.save({ ...session, accessExpiresAt: Date.now() - 1 });
  const gate = op.holdNextTokenRequest();
  const pending = at(a);
  await until(gate.held, "A's refresh reaches the provider");
  redis.pause();
  gate.release();
  const reply = await pending;
  assert.equal(reply.status, 200, 'served with the new tokens although Redis does not answer');
  const issued = op.tokenAnswers.at(-1)!;
  assert.equal(
    reply.json<{ headers: Record<string, string> }>().headers['x-forwarded-access-token'],
    issued.access_token,
  );
  redis.resume();
  await until(
    () => a.logs.some((line) => line.msg === 'refreshed tokens saved'),
    () => JSON.stringify(a.logs.filter((l) => !l.req_id || String(l.msg).includes('refresh')).slice(-15), null, 1),
  );
  assert.equal(
    (await auth(b).sessions.tokens(session)).refreshToken,
    issued.refresh_token,
    'the rotated token is stored',
  );
  await until(
    async () =>
      (await at(b)).json<{ headers: Record<string, string> }>().headers['x-forwarded-access-token'] ===
      issued.access_token,
    'B forwards the refreshed token',
  );
});

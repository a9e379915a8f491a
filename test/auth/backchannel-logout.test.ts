// OpenID Connect Back-Channel Logout 1.0 with a real oidc-provider: the provider POSTs its logout token to one
// instance; every session of that sid (or sub) ends on every instance: two Gatehouse instances on one Redis, and two
// workers on one SQLite file (the local backend). Tokens that are not valid logout tokens, and a replay, get 400.
// https://openid.net/specs/openid-connect-backchannel-1_0.html
import assert from 'node:assert/strict';
import https from 'node:https';
import { test } from 'node:test';
import { startEchoUpstream } from '../harness/echo-upstream.ts';
import { Browser, freePort, opAuth, startGatehouse, type TestGatehouse } from '../harness/gatehouse-auth.ts';
import { startOP } from '../harness/op.ts';
import { startRedis } from '../harness/redis.ts';
import { until } from '../harness/wait.ts';

const API = { accept: 'application/json', 'sec-fetch-mode': 'cors', 'sec-fetch-dest': 'empty' };

for (const backend of ['redis', 'local'] as const) {
  test(`back-channel logout (${backend} backend): the provider's logout token ends the user's sessions on every instance; invalid tokens and replays get 400`, async (t) => {
    const redis = backend === 'redis' ? await startRedis() : undefined;
    const echo = await startEchoUpstream();
    const [portA, portB] = [await freePort(), await freePort()];
    let caPem = '';
    const posted: string[] = [];
    // The provider's outgoing requests reach instance B over TLS with the test CA (oidc-provider's own client refuses
    // loopback addresses, rightly so in production).
    const providerFetch: typeof fetch = async (input, init) => {
      const url = new URL(input instanceof Request ? input.url : String(input));
      const body = String(init?.body ?? '');
      posted.push(body);
      return new Promise<Response>((resolve, reject) => {
        const req = https.request(
          {
            host: '127.0.0.1',
            port: url.port,
            path: url.pathname,
            method: init?.method ?? 'GET',
            servername: url.hostname,
            ca: caPem,
            headers: {
              host: url.host,
              'content-type': new Headers(init?.headers).get('content-type') ?? '',
              'content-length': Buffer.byteLength(body),
            },
          },
          (res) => {
            let text = '';
            res.on('data', (d) => (text += d));
            res.on('end', () => resolve(new Response(text, { status: res.statusCode })));
          },
        );
        req.on('error', reject);
        req.end(body);
      });
    };
    const op = await startOP({
      redirectUris: [`https://app.test:${portA}/oauth2/callback`],
      backchannelLogoutUri: `https://app.test:${portB}/oauth2/backchannel_logout`,
      fetch: providerFetch,
    });
    const global =
      backend === 'redis' ? `workers = 1\n[store]\nbackend = "redis"\nurl = "${redis!.url}"\n` : 'workers = 2';
    const site = [
      {
        names: ['app.test'],
        upstream: echo.url,
        auth: {
          ...opAuth(op.issuer),
          email_domains: ['*'],
          redirect_url: `https://app.test:${portA}/oauth2/callback`,
        },
      },
    ];
    const a = await startGatehouse({ port: portA, sites: site, global });
    const b = await startGatehouse({ port: portB, dir: a.dir, sites: site, global });
    caPem = a.caPem;
    t.after(async () => {
      await a.stop();
      await b.stop();
      await op.close();
      await echo.close();
      await redis?.stop();
    });

    const login = async (user: string) => {
      const browser = new Browser(a.caPem);
      assert.equal((await browser.navigate(`https://app.test:${portA}/`, user)).status, 200);
      const [name, value] = browser.sessionCookie(`https://app.test:${portA}`)!;
      const at = async (gh: TestGatehouse) =>
        (await browser.request(`https://app.test:${gh.port}/x`, { headers: { ...API, cookie: `${name}=${value}` } }))
          .status;
      const session = (await a.runtime.siteList[0]!.auth!.sessions.fromCookie(value))!;
      return { at, session };
    };
    const alice = await login('alice');
    const aliceAgain = await login('alice'); // a second provider session of the same user
    const bob = await login('bob');
    for (const user of [alice, aliceAgain, bob]) {
      assert.equal(await user.at(a), 200);
      assert.equal(await user.at(b), 200);
    }
    assert.ok(alice.session.sid, 'the provider gives the session a sid');

    // The real provider signs out alice's first provider session: it POSTs a logout token (sid + sub) to B.
    const client = (await op.provider.Client.find('gatehouse'))!;
    const logoutClient = client as unknown as { backchannelLogout(sub: string, sid: string): Promise<void> };
    await logoutClient.backchannelLogout('alice', alice.session.sid!);
    for (const gh of [a, b]) await until(async () => (await alice.at(gh)) === 401, 'alice refused everywhere');
    assert.equal(await aliceAgain.at(a), 200, 'only that provider session ended');
    assert.equal(await bob.at(b), 200);

    const post = (body: string, init: { method?: string; type?: string } = {}) =>
      new Browser(a.caPem).request(`https://app.test:${portB}/oauth2/backchannel_logout`, {
        method: init.method ?? 'POST',
        headers: { 'content-type': init.type ?? 'application/x-www-form-urlencoded', accept: '', 'sec-fetch-mode': '' },
        body,
      });
    // A replay of the same token: 400, JSON, not cached.
    const replay = await post(posted.at(-1)!);
    assert.equal(replay.status, 400);
    assert.equal(replay.json().error, 'ERR_LOGOUT_TOKEN_INVALID');
    assert.match(String(replay.json().message), /already used/);
    assert.equal(replay.headers['cache-control'], 'no-store');

    // Tokens signed by the provider that are not logout tokens, and a forged one.
    const sign = async (claims: Record<string, unknown>, use: 'logout' | 'idtoken' = 'logout') => {
      const token = new op.provider.IdToken({ sub: 'alice' }, { client, ctx: undefined });
      // As the provider's own backchannelLogout(): the sub passes the claims mask.
      Object.assign(token, { mask: { sub: null } });
      for (const [key, value] of Object.entries(claims)) token.set(key, value);
      return (await token.issue({ use })) as string;
    };
    const EVENTS = { 'http://schemas.openid.net/event/backchannel-logout': {} };
    const refused = async (token: string, why: RegExp) => {
      const reply = await post(new URLSearchParams({ logout_token: token }).toString());
      assert.equal(reply.status, 400, `${why}`);
      assert.equal(reply.json().error, 'ERR_LOGOUT_TOKEN_INVALID');
      assert.match(String(reply.json().message), why);
    };
    await refused(await sign({ events: EVENTS, jti: 'j1', nonce: 'n' }), /nonce/);
    await refused(await sign({ jti: 'j2' }), /events/);
    await refused(await sign({ events: { other: {} }, jti: 'j3' }), /events/);
    await refused(await sign({ jti: 'j4', sid: 'x', nonce: 'n' }, 'idtoken'), /jti|events|nonce/);
    const good = await sign({ events: EVENTS, jti: 'j5', sid: 'unknown' });
    await refused(`${good.slice(0, -4)}AAAA`, /signature/i);
    await refused('not-a-jwt', /JWS|JWT|Invalid/i);
    assert.equal((await post('', { method: 'GET' })).status, 405);
    assert.equal((await post(`logout_token=${good}`, { type: 'application/json' })).status, 400);
    assert.equal(await aliceAgain.at(b), 200, 'none of them ended a session');

    // Only a sub: every session of that user, on every instance.
    const bySub = await post(
      new URLSearchParams({ logout_token: await sign({ events: EVENTS, jti: 'j6' }) }).toString(),
    );
    assert.equal(bySub.status, 200, bySub.body);
    assert.equal(bySub.headers['cache-control'], 'no-store');
    for (const gh of [a, b]) await until(async () => (await aliceAgain.at(gh)) === 401, 'every alice session ended');
    assert.equal(await bob.at(a), 200, 'other users are untouched');
  });
}

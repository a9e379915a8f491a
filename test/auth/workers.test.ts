// workers = N: every worker process has its own session cache in front of one SQLite store. Two runtimes on one
// store stand in for two workers here: a logout in one is honoured at once by the other, and a refresh due in
// both reaches the provider once (a lease in the store), the other worker picking up the refreshed tokens.
import assert from 'node:assert/strict';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { test } from 'node:test';
import { startEchoUpstream } from '../harness/echo-upstream.ts';
import { Browser, freePort, opAuth, startGatehouse } from '../harness/gatehouse-auth.ts';
import { startOP } from '../harness/op.ts';

const API = { accept: 'application/json', 'sec-fetch-mode': 'cors', 'sec-fetch-dest': 'empty' };

test('two workers on one session store: logout and refresh are seen by both; one refresh between them', async (t) => {
  const backend = await startEchoUpstream();
  const [portA, portB] = [await freePort(), await freePort()];
  const op = await startOP({
    redirectUris: [`https://app.test:${portA}/oauth2/callback`],
    postLogoutRedirectUris: [`https://app.test:${portA}/`],
  });
  const site = (port: number) => [
    {
      names: ['app.test'],
      upstream: backend.url,
      auth: {
        ...opAuth(op.issuer),
        email_domains: ['*'],
        pass_access_token: true,
        redirect_url: `https://app.test:${port === portB ? portA : port}/oauth2/callback`,
      },
    },
  ];
  const a = await startGatehouse({ port: portA, sites: site(portA), global: 'workers = 2' });
  const b = await startGatehouse({ port: portB, dir: a.dir, sites: site(portB), global: 'workers = 2' });
  t.after(async () => {
    await a.stop();
    await b.stop();
    await op.close();
    await backend.close();
  });

  const browser = new Browser(a.caPem);
  await browser.navigate(`https://app.test:${portA}/`, 'alice');
  const cookie = [...browser.cookies(`app.test:${portA}`)].map(([k, v]) => `${k}=${v}`).join('; ');
  const value = cookie.split('=').slice(1).join('=');
  const at = (port: number) => browser.request(`https://app.test:${port}/x`, { headers: { ...API, cookie } });
  assert.equal((await at(portB)).status, 200, 'worker B knows the session worker A created');

  // Both workers see a refresh due; 20 requests on each → one refresh_token grant at the provider.
  const authA = a.runtime.siteList[0]!.auth!;
  const authB = b.runtime.siteList[0]!.auth!;
  await authA.sessions.save({ ...(await authA.sessions.fromCookie(value))!, accessExpiresAt: Date.now() + 1_000 });
  const replies = await Promise.all([
    ...Array.from({ length: 20 }, () => at(portA)),
    ...Array.from({ length: 20 }, () => at(portB)),
  ]);
  assert.deepEqual(new Set(replies.map((r) => r.status)), new Set([200]));
  assert.equal(op.refreshGrants(), 1);
  assert.equal(authA.refreshes + authB.refreshes, 1);
  const fresh = (await authA.sessions.fromCookie(value))!.accessToken;
  assert.equal(
    (await at(portB)).json<{ headers: Record<string, string> }>().headers['x-auth-request-access-token'],
    fresh,
    'B forwards the token A refreshed',
  );

  // Logout at A: B refuses the same cookie on the very next request.
  await browser.request(`https://app.test:${portA}/oauth2/sign_out`);
  assert.equal((await at(portB)).status, 401);
});

test('workers = 2: once the access token expired while the session idled, parallel requests on both workers never carry it', async (t) => {
  // The upstream records every access token it receives and when; the provider says afterwards whether it had expired.
  const received: { token: string; at: number }[] = [];
  const upstream = http.createServer((req, res) => {
    received.push({ token: String(req.headers['x-forwarded-access-token']), at: Date.now() });
    res.end('ok');
  });
  await new Promise<void>((resolve) => upstream.listen(0, '127.0.0.1', resolve));
  t.after(
    () =>
      new Promise<void>((resolve) => {
        upstream.closeAllConnections();
        upstream.close(() => resolve());
      }),
  );
  const [portA, portB] = [await freePort(), await freePort()];
  // Six seconds: long enough to be refreshed ahead of its expiry (a quarter of it), short enough to idle past.
  const op = await startOP({ redirectUris: [`https://app.test:${portA}/oauth2/callback`], accessTokenTtl: 6 });
  const site = [
    {
      names: ['app.test'],
      upstream: `http://127.0.0.1:${(upstream.address() as AddressInfo).port}`,
      auth: {
        ...opAuth(op.issuer),
        email_domains: ['*'],
        pass_access_token: true,
        redirect_url: `https://app.test:${portA}/oauth2/callback`,
      },
    },
  ];
  const a = await startGatehouse({ port: portA, sites: site, global: 'workers = 2' });
  const b = await startGatehouse({ port: portB, dir: a.dir, sites: site, global: 'workers = 2' });
  t.after(async () => {
    await a.stop();
    await b.stop();
    await op.close();
  });

  const browser = new Browser(a.caPem);
  assert.equal((await browser.navigate(`https://app.test:${portA}/`, 'alice')).status, 200);
  const cookie = [...browser.cookies(`app.test:${portA}`)].map(([k, v]) => `${k}=${v}`).join('; ');
  const first = received.at(-1)!.token;
  // Idle until the provider holds the token expired (its exp; find() would still return it within its clock tolerance).
  const issued = (await op.provider.AccessToken.find(first))!;
  for (const deadline = Date.now() + 60_000; !issued.isExpired;) {
    assert.ok(Date.now() < deadline, 'the provider never expired the access token');
    await new Promise((resolve) => setTimeout(resolve, 100));
  }

  received.length = 0;
  const grants = op.refreshGrants();
  const at = (port: number) => browser.request(`https://app.test:${port}/x`, { headers: { ...API, cookie } });
  const replies = await Promise.all(Array.from({ length: 20 }, () => [at(portA), at(portB)]).flat());
  assert.deepEqual(
    replies.map((r) => r.status),
    Array(40).fill(200),
  );
  assert.equal(received.length, 40);
  const expired: string[] = [];
  for (const { token, at: when } of received) {
    const known = await op.provider.AccessToken.find(token, { ignoreExpiration: true });
    if (!known || known.exp! * 1000 <= when) expired.push(token === first ? "the idle session's token" : token);
  }
  assert.deepEqual(expired, [], `${expired.length} of 40 requests reached the upstream with an expired access token`);
  assert.equal(op.refreshGrants() - grants, 1, 'one refresh between the two workers');
});

// workers = N: every worker process has its own session cache in front of one SQLite store. Two runtimes on one
// store stand in for two workers here: a logout in one is honoured at once by the other, and a refresh due in
// both reaches the provider once (a lease in the store), the other worker picking up the refreshed tokens.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { startEchoBackend } from '../../src/demo/echo-backend.ts';
import { Browser, freePort, SECRET, startGatehouse } from '../helpers/gatehouse-auth.ts';
import { startOP } from '../helpers/op.ts';

const API = { accept: 'application/json', 'sec-fetch-mode': 'cors', 'sec-fetch-dest': 'empty' };

test('two workers on one session store: logout and refresh are seen by both; one refresh between them', async (t) => {
  const backend = await startEchoBackend();
  const [portA, portB] = [await freePort(), await freePort()];
  const op = await startOP({ redirectUris: [`https://app.test:${portA}/oauth2/callback`], postLogoutRedirectUris: [`https://app.test:${portA}/`] });
  const site = (port: number) => [{ names: ['app.test'], upstream: backend.url, auth: {
    oidc_issuer_url: op.issuer, client_id: 'gatehouse', client_secret: 'gatehouse-secret', cookie_secret: SECRET, email_domains: ['*'], pass_access_token: true,
    redirect_url: `https://app.test:${port === portB ? portA : port}/oauth2/callback`,
  } }];
  const a = await startGatehouse({ port: portA, sites: site(portA), global: 'workers = 2' });
  const b = await startGatehouse({ port: portB, dir: a.dir, sites: site(portB), global: 'workers = 2' });
  t.after(async () => { await a.stop(); await b.stop(); await op.close(); await backend.close(); });

  const browser = new Browser(a.caPem);
  await browser.navigate(`https://app.test:${portA}/`, 'alice');
  const cookie = [...browser.cookies(`app.test:${portA}`)].map(([k, v]) => `${k}=${v}`).join('; ');
  const value = cookie.split('=').slice(1).join('=');
  const at = (port: number) => browser.request(`https://app.test:${port}/x`, { headers: { ...API, cookie } });
  assert.equal((await at(portB)).status, 200, 'worker B knows the session worker A created');

  // Both workers see a refresh due; 20 requests on each → one refresh_token grant at the provider.
  const authA = a.runtime.siteList[0]!.auth!;
  const authB = b.runtime.siteList[0]!.auth!;
  authA.sessions.save({ ...authA.sessions.fromCookie(value)!, accessExpiresAt: Date.now() + 1_000 });
  const replies = await Promise.all([...Array.from({ length: 20 }, () => at(portA)), ...Array.from({ length: 20 }, () => at(portB))]);
  assert.deepEqual(new Set(replies.map((r) => r.status)), new Set([200]));
  assert.equal(op.refreshGrants(), 1);
  assert.equal(authA.refreshes + authB.refreshes, 1);
  const fresh = authA.sessions.fromCookie(value)!.accessToken;
  assert.equal((await at(portB)).json<{ headers: Record<string, string> }>().headers['x-auth-request-access-token'], fresh, 'B forwards the token A refreshed');

  // Logout at A: B refuses the same cookie on the very next request.
  await browser.request(`https://app.test:${portA}/oauth2/sign_out`);
  assert.equal((await at(portB)).status, 401);
});

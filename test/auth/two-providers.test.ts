// Two sites in one process, each with its own identity provider, client and secret; a public site beside them
// that does no auth work; /ping and /ready on the metrics listener.
import assert from 'node:assert/strict';
import { once } from 'node:events';
import http from 'node:http';
import net from 'node:net';
import { test } from 'node:test';
import { startEchoUpstream } from '../harness/echo-upstream.ts';
import { Browser, freePort, SECRET, startGatehouse } from '../harness/gatehouse-auth.ts';
import { startOP } from '../harness/op.ts';

function getJson(port: number, path: string): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) =>
    http
      .get({ host: '127.0.0.1', port, path }, (res) => {
        let body = '';
        res.on('data', (d) => (body += d));
        res.on('end', () => resolve({ status: res.statusCode!, body }));
      })
      .on('error', reject),
  );
}

test('two sites, two providers, one public site, /ping and /ready', async (t) => {
  const backend = await startEchoUpstream();
  const port = await freePort();
  const one = await startOP({
    redirectUris: [`https://one.test:${port}/oauth2/callback`],
    clientId: 'client-one',
    clientSecret: 'secret-one',
  });
  const two = await startOP({
    redirectUris: [`https://two.test:${port}/oauth2/callback`],
    clientId: 'client-two',
    clientSecret: 'secret-two',
  });
  const auth = (issuer: string, id: string, secret: string, cookieSecret: string) => ({
    oidc_issuer_url: issuer,
    client_id: id,
    client_secret: secret,
    cookie_secret: cookieSecret,
    email_domains: ['*'],
  });
  const gh = await startGatehouse({
    port,
    sites: [
      { names: ['one.test'], upstream: backend.url, auth: auth(one.issuer, 'client-one', 'secret-one', SECRET) },
      {
        names: ['two.test'],
        upstream: backend.url,
        auth: auth(two.issuer, 'client-two', 'secret-two', 'ZmVkY2JhOTg3NjU0MzIxMGZlZGNiYTk4NzY1NDMyMTA='),
      },
      { names: ['public.test'], upstream: backend.url },
    ],
  });
  t.after(async () => {
    await gh.stop();
    await one.close();
    await two.close();
    await backend.close();
  });

  const b = new Browser(gh.caPem);
  const first = await b.request(`https://one.test:${port}/`);
  assert.equal(new URL(first.headers.location!).origin, one.issuer);
  const second = await b.request(`https://two.test:${port}/`);
  assert.equal(new URL(second.headers.location!).origin, two.issuer);
  assert.equal((await b.navigate(`https://one.test:${port}/`, 'alice')).status, 200);
  assert.equal((await b.navigate(`https://two.test:${port}/`, 'bob')).status, 200);
  const who = async (host: string) =>
    (await b.request(`https://${host}:${port}/`, { headers: { accept: 'application/json' } })).json<{
      headers: Record<string, string>;
    }>().headers['x-auth-request-user'];
  assert.equal(await who('one.test'), 'alice@example.test');
  assert.equal(await who('two.test'), 'bob@other.test');

  // A cookie of one site is worthless on the other (own secret, own sessions).
  const cookieOne = [...b.cookies(`one.test:${port}`)].map(([k, v]) => `${k}=${v}`).join('; ');
  const cross = await new Browser(gh.caPem).request(`https://two.test:${port}/x`, {
    headers: { cookie: cookieOne, accept: 'application/json', 'sec-fetch-mode': 'cors' },
  });
  assert.equal(cross.status, 401);

  const open = await new Browser(gh.caPem).request(`https://public.test:${port}/oauth2/start`, {
    headers: { accept: 'application/json' },
  });
  assert.equal(open.status, 200, 'a public site has no /oauth2/ routes: the path goes upstream like any other');
  assert.equal(open.json<{ url: string }>().url, '/oauth2/start');

  const metrics = gh.listening.metrics!.port;
  assert.equal((await getJson(metrics, '/ping')).status, 200);
  const ready = await getJson(metrics, '/ready');
  assert.equal(ready.status, 200);
  assert.deepEqual(JSON.parse(ready.body), {
    ready: true,
    sites: [
      { site: 'one.test', provider_ready: true },
      { site: 'two.test', provider_ready: true },
    ],
  });
});

test('/ready is 503 while a provider cannot be discovered; the site answers 503 for a login, public routes still work', async (t) => {
  const backend = await startEchoUpstream();
  // An issuer whose every connection is cut: the port stays ours for the whole test, so no other test's server can
  // take it and answer discovery.
  const dead = net.createServer((socket) => socket.destroy()).listen(0, '127.0.0.1');
  await once(dead, 'listening');
  t.after(() => dead.close());
  const deadPort = (dead.address() as net.AddressInfo).port;
  const gh = await startGatehouse({
    sites: [
      {
        names: ['down.test'],
        upstream: backend.url,
        auth: {
          oidc_issuer_url: `http://127.0.0.1:${deadPort}`,
          client_id: 'c',
          client_secret: 's',
          cookie_secret: SECRET,
          email_domains: ['*'],
          skip_auth_routes: ['^/status$'],
        },
      },
    ],
  });
  t.after(async () => {
    await gh.stop();
    await backend.close();
  });
  const ready = await getJson(gh.listening.metrics!.port, '/ready');
  assert.equal(ready.status, 503);
  assert.deepEqual(JSON.parse(ready.body).sites, [{ site: 'down.test', provider_ready: false }]);
  const b = new Browser(gh.caPem);
  const login = await b.request(`https://down.test:${gh.port}/`);
  assert.equal(login.status, 503);
  assert.match(login.body, /ERR_AUTH_PROVIDER_UNAVAILABLE/);
  assert.equal((await b.request(`https://down.test:${gh.port}/status`)).status, 200);
});

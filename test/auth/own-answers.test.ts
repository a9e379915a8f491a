// Every answer Gatehouse writes itself (error pages, challenges, /oauth2/* pages and redirects, `status` routes, the
// redirect to HTTPS, WebSocket refusals) carries x-request-id = the req_id of its log line and cache-control: no-store;
// an upstream's answer keeps its own caching.
import assert from 'node:assert/strict';
import { once } from 'node:events';
import http from 'node:http';
import { test } from 'node:test';
import { WebSocket } from 'ws';
import { startAuthFixture } from '../harness/auth-fixture.ts';
import { startBackend } from '../harness/backend.ts';
import { request, request2, type Reply } from '../harness/clients.ts';
import { siteToml, startGatehouse } from '../harness/gatehouse.ts';
import { createTestCa } from '../harness/pki.ts';
import { until } from '../harness/wait.ts';

type Answer = Pick<Reply, 'status' | 'headers'>;

/** The answer is our own: no-store, and its request id names the log line of that request with that status. */
async function assertOwn(
  logs: Record<string, unknown>[],
  what: string,
  answer: Answer,
  status: number,
  msg = 'request',
): Promise<void> {
  assert.equal(answer.status, status, what);
  assert.equal(answer.headers['cache-control'], 'no-store', what);
  const id = answer.headers['x-request-id'];
  assert.match(String(id), /^\w{6,}$/, what);
  await until(
    () => logs.some((l) => l.req_id === id && l.msg === msg && (msg !== 'request' || l.status === status)),
    `${what}: a "${msg}" log line with req_id ${id}`,
  );
}

test('auth site: challenges, error pages, every /oauth2 endpoint and the sign-out redirect carry x-request-id (in the log) and no-store', async (t) => {
  const f = await startAuthFixture();
  t.after(() => f.close());
  const b = f.browser();
  const own = (what: string, answer: Answer, status: number) => assertOwn(f.gh.logs, what, answer, status);
  const api = { accept: 'application/json', 'sec-fetch-mode': 'cors' };

  const challenge = await b.request(`${f.origin}/docs`);
  await own('challenge 302', challenge, 302);
  await own('challenge 401', await b.request(`${f.origin}/x`, { headers: api }), 401);
  const signInPage = await b.request(`${f.origin}/oauth2/sign_in?rd=%2Fdocs`);
  await own('sign-in page', signInPage, 200);
  assert.match(signInPage.body, /<a id="sign-in" href="\/oauth2\/start\?rd=https%3A%2F%2Fapp\.test%3A\d+%2Fdocs">/);
  await own(
    'sign-in page over HTTP/2',
    await request2(f.gh.port, { ca: f.gh.caPem, servername: 'app.test', path: '/oauth2/sign_in' }),
    200,
  );
  await own('start', await b.request(`${f.origin}/oauth2/start?rd=%2F`), 302);
  await own(
    'refused return address (error page)',
    await b.request(`${f.origin}/oauth2/start?rd=https%3A%2F%2Fevil.example%2F`),
    400,
  );
  await own('unknown /oauth2 path (error page)', await b.request(`${f.origin}/oauth2/nope`), 404);
  await own('auth, anonymous', await b.request(`${f.origin}/oauth2/auth`), 401);
  await own('userinfo, anonymous', await b.request(`${f.origin}/oauth2/userinfo`, { headers: api }), 401);
  await own('callback without a login state', await b.request(`${f.origin}/oauth2/callback?state=x&code=y`), 400);

  const callback = await b.navigate(challenge.headers.location!, 'alice', {
    stopAt: (u) => u.pathname === '/oauth2/callback',
  });
  await own('callback 302 into the site', callback, 302);
  await own('auth, signed in', await b.request(`${f.origin}/oauth2/auth`), 202);
  await own('userinfo, signed in', await b.request(`${f.origin}/oauth2/userinfo`, { headers: api }), 200);
  await own('sign-out redirect', await b.request(`${f.origin}/oauth2/sign_out`), 302);
  await own('front-channel logout', await b.request(`${f.origin}/oauth2/frontchannel_logout?sid=none`), 200);
});

test('public site: status routes, deny rules, WebSocket refusals and the redirect to HTTPS carry them too; a proxied answer keeps its own cache-control', async (t) => {
  const ca = createTestCa();
  const cert = ca.issue(['app.test']);
  const backend = await startBackend(t, (_req, res) =>
    res.writeHead(200, { 'cache-control': 'max-age=60' }).end('upstream'),
  );
  const gh = await startGatehouse(t, {
    http: true,
    sites: {
      app: siteToml(
        ['app.test'],
        cert,
        backend.url,
        'deny_paths = ["^/denied"]',
        '[[routes]]\npath = "/gone"\nstatus = 410\n',
      ),
    },
  });
  const get = (path: string, headers: Record<string, string> = {}) =>
    request(gh.port, { ca: ca.caPem, servername: 'app.test', path, headers });

  await assertOwn(gh.logs, 'status route', await get('/gone'), 410);
  await assertOwn(gh.logs, 'deny rule (error page)', await get('/denied'), 403);
  await assertOwn(gh.logs, 'deny rule (JSON)', await get('/denied', { accept: 'application/json' }), 403);
  const redirect = await new Promise<http.IncomingMessage>((resolve, reject) => {
    http
      .get({ host: '127.0.0.1', port: gh.httpPort, path: '/', headers: { host: 'app.test' } }, (res) => {
        res.resume();
        resolve(res);
      })
      .on('error', reject);
  });
  await assertOwn(gh.logs, 'redirect to HTTPS', { status: redirect.statusCode!, headers: redirect.headers }, 308);

  const ws = new WebSocket(`wss://127.0.0.1:${gh.port}/denied`, {
    ca: ca.caPem,
    servername: 'app.test',
    headers: { host: 'app.test' },
  } as WebSocket.ClientOptions);
  ws.on('error', () => {
    /* a refused upgrade ends with an error by design */
  });
  const [, refused] = (await once(ws, 'unexpected-response')) as [unknown, http.IncomingMessage];
  ws.terminate();
  await assertOwn(
    gh.logs,
    'WebSocket refusal',
    { status: refused.statusCode!, headers: refused.headers },
    403,
    'upgrade',
  );

  const proxied = await get('/');
  assert.equal(proxied.status, 200);
  assert.equal(proxied.headers['cache-control'], 'max-age=60', 'an upstream decides the caching of its own answers');
});

// A WebSocket upgrade takes the request path to its end, like any request: one access-log line with its status
// (101, or the refusal's) and the request id the client got, counted in /metrics gatehouse_requests_total and, when
// refused, in gatehouse_errors_total.
import assert from 'node:assert/strict';
import { once } from 'node:events';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { test } from 'node:test';
import { WebSocket, WebSocketServer } from 'ws';
import { Browser, freePort, opAuth, startGatehouse } from '../harness/gatehouse-auth.ts';
import { sample, scrape } from '../harness/metrics.ts';
import { startOP } from '../harness/op.ts';
import { until } from '../harness/wait.ts';
import { listenWithWebSockets } from '../harness/backend.ts';

test("WebSocket upgrades (proxied 101, refused 401, 403 and 404) each get one access-log line with the client's request id and are counted in /metrics", async (t) => {
  // The upstream tells the client the request id it was given (X-Request-Id), the only id a 101's client sees.
  const server = http.createServer((_req, res) => res.end('plain'));
  const wss = new WebSocketServer({ server });
  wss.on('connection', (socket, req) => socket.send(String(req.headers['x-request-id'])));
  await listenWithWebSockets(t, server, wss);
  const upstream = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;

  const port = await freePort();
  const origin = `https://app.test:${port}`;
  const op = await startOP({ redirectUris: [`${origin}/oauth2/callback`] });
  t.after(() => op.close());
  const gh = await startGatehouse({
    port,
    sites: [
      {
        names: ['app.test'],
        upstream,
        top: 'deny_paths = ["^/denied"]',
        extra: `[[routes]]\npath = "/nows"\nupstream = "${upstream}"\nwebsocket = false\n`,
        auth: opAuth(op.issuer),
      },
    ],
  });
  t.after(() => gh.stop());
  const browser = new Browser(gh.caPem);
  assert.equal((await browser.navigate(`${origin}/`, 'alice')).status, 200);
  const [name, value] = browser.sessionCookie(origin)!;
  const cookie = `${name}=${value}`;

  const metricsPort = gh.listening.metrics!.port;
  const before = (await scrape(metricsPort)).body;
  const upgrade = (path: string, headers: Record<string, string>) => {
    const ws = new WebSocket(`wss://127.0.0.1:${port}${path}`, {
      ca: gh.caPem,
      servername: 'app.test',
      headers: { host: `app.test:${port}`, ...headers },
    } as WebSocket.ClientOptions);
    ws.on('error', () => {
      /* a refused upgrade ends with an error by design */
    });
    return new Promise<{ status: number; requestId: string }>((resolve) => {
      ws.once('unexpected-response', (_req, res: http.IncomingMessage) => {
        resolve({ status: res.statusCode!, requestId: String(res.headers['x-request-id']) });
        ws.terminate();
      });
      ws.once('message', (data) => {
        resolve({ status: 101, requestId: String(data) });
        ws.close();
      });
    });
  };

  const cases: { path: string; headers: Record<string, string>; status: number; error?: string; user?: string }[] = [
    { path: '/ws', headers: { cookie }, status: 101, error: undefined, user: 'alice@example.test' },
    { path: '/ws', headers: {}, status: 401, error: 'ERR_AUTH_REQUIRED', user: undefined },
    { path: '/denied', headers: { cookie }, status: 403, error: 'ERR_ROUTE_DENIED', user: undefined },
    { path: '/nows', headers: { cookie }, status: 404, error: 'ERR_ROUTE_NOT_FOUND', user: 'alice@example.test' },
  ];
  for (const c of cases) {
    const answer = await upgrade(c.path, c.headers);
    assert.equal(answer.status, c.status, c.path);
    assert.match(answer.requestId, /^\w{6,}$/, `${c.path}: the client got a request id`);
    await until(
      () => gh.logs.some((l) => l.req_id === answer.requestId),
      `${c.path} ${c.status}: a log line with req_id ${answer.requestId}`,
    );
    const lines = gh.logs.filter((l) => l.req_id === answer.requestId && (l.msg === 'upgrade' || l.msg === 'request'));
    assert.equal(lines.length, 1, `${c.path} ${c.status}: one access-log line`);
    const line = lines[0]!;
    assert.equal(line.msg, 'upgrade');
    assert.equal(line.status, c.status, c.path);
    assert.equal(line.error, c.error, c.path);
    assert.equal(line.user, c.user, c.path);
    assert.equal(line.site, 'app.test');
    assert.equal(line.method, 'GET');
  }

  const after = (await scrape(metricsPort)).body;
  const delta = (series: string) => (sample(after, series) ?? 0) - (sample(before, series) ?? 0);
  for (const status of [101, 401, 403, 404])
    assert.equal(delta(`gatehouse_requests_total{site="app.test",code="${status}"}`), 1, `one ${status} counted`);
  for (const error of ['ERR_AUTH_REQUIRED', 'ERR_ROUTE_DENIED', 'ERR_ROUTE_NOT_FOUND'])
    assert.equal(delta(`gatehouse_errors_total{site="app.test",error="${error}"}`), 1, error);
  assert.equal(
    sample(after, 'gatehouse_requests_in_flight'),
    0,
    'an answered upgrade is no longer in flight, its tunnel may live on',
  );
});

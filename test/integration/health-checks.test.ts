// Active health checks of an upstream group (health_check): Express upstreams that fail /healthz are taken out of the
// rotation after `unhealthy` failed checks and come back after `healthy` passed ones; a group whose servers are all
// down answers 502 at once with the error page, without a connection to any of them.
import assert from 'node:assert/strict';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { test, type TestContext } from 'node:test';
import express from 'express';
import { request } from '../harness/clients.ts';
import { startGatehouse } from '../harness/gatehouse.ts';
import { sample, scrape } from '../harness/metrics.ts';
import { createTestCa } from '../harness/pki.ts';

const ca = createTestCa();
const cert = ca.issue(['app.test']);

interface Upstream {
  url: string;
  healthy: boolean;
  /** Requests other than health checks. */
  served: number;
  checks: number;
}

async function startUpstream(t: TestContext, name: string, healthy: boolean): Promise<Upstream> {
  const app = express();
  const upstream: Upstream = { url: '', healthy, served: 0, checks: 0 };
  app.get('/healthz', (req, res) => {
    upstream.checks++;
    assert.equal(req.headers['user-agent'], 'Gatehouse-HealthCheck');
    res.status(upstream.healthy ? 200 : 500).send(upstream.healthy ? 'ok' : 'failing');
  });
  app.use((_req, res) => {
    upstream.served++;
    res.send(name);
  });
  const server = http.createServer(app);
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  t.after(
    () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  );
  upstream.url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  return upstream;
}

test('health_check: failing servers leave the rotation, all down is 502 at once with no connection, recovery brings them back', async (t) => {
  const a = await startUpstream(t, 'A', true);
  const b = await startUpstream(t, 'B', false);
  const gh = await startGatehouse(t, {
    main: '[metrics]\nlisten = "127.0.0.1:0"\n',
    sites: {
      app: `server_names = ["app.test"]
[tls]
cert = ${JSON.stringify(cert.certFile)}
key = ${JSON.stringify(cert.keyFile)}
[upstreams.app]
servers = ["${a.url}", "${b.url}"]
health_check = { path = "/healthz", interval = "100ms", timeout = "1s", healthy = 2, unhealthy = 2 }
[[routes]]
path = "/"
upstream = "app"
`,
    },
  });
  const get = () =>
    request(gh.port, { ca: ca.caPem, servername: 'app.test', path: '/', headers: { accept: 'application/json' } });
  const marked = (upstream: Upstream, msg: string) =>
    gh.logLine((l) => l.msg === msg && l.upstream === upstream.url, `${msg}: ${upstream.url}`);

  await marked(b, 'upstream unhealthy');
  const bodies = [];
  for (let i = 0; i < 6; i++) bodies.push((await get()).body);
  assert.deepEqual(bodies, ['A', 'A', 'A', 'A', 'A', 'A']);
  assert.equal(b.served, 0);
  const healthy = async (upstream: Upstream) =>
    sample(
      (await scrape(gh.metrics!.port)).body,
      `gatehouse_upstream_server_up{site="app.test",upstream="app",server="${upstream.url}"}`,
    );
  assert.equal(await healthy(a), 1);
  assert.equal(await healthy(b), 0);

  a.healthy = false;
  await marked(a, 'upstream unhealthy');
  const servedBefore = a.served + b.served;
  const down = await get();
  assert.equal(down.status, 502);
  const error = JSON.parse(down.body) as { error: string; request_id: string };
  assert.equal(error.error, 'ERR_UPSTREAM_DOWN');
  const line = await gh.logLine((l) => l.req_id === error.request_id && l.msg === 'request');
  assert.equal(line.error, 'ERR_UPSTREAM_DOWN');
  assert.equal(line.upstream, undefined, 'no server was tried');
  assert.equal(a.served + b.served, servedBefore);

  a.healthy = true;
  await marked(a, 'upstream healthy');
  assert.equal((await get()).body, 'A');
  assert.ok(b.checks >= 2 && a.checks >= 4);
});

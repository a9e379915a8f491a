// Prometheus /metrics on the [metrics] listener: requests by site and status, Gatehouse's error codes, latency,
// certificate expiry, per-upstream series, logins/refreshes/logouts, refused WebSocket upgrades and Node's process
// metrics. The cluster case (the primary sums its workers) is in lifecycle.test.ts.
import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import { once } from 'node:events';
import fs from 'node:fs';
import path from 'node:path';
import { test } from 'node:test';
import { WebSocket } from 'ws';
import { startEchoUpstream } from '../harness/echo-upstream.ts';
import { startAuthFixture } from '../harness/auth-fixture.ts';
import { refusedPort } from '../harness/backend.ts';
import { request } from '../harness/clients.ts';
import { sample, scrape } from '../harness/metrics.ts';
import { groupSiteToml, siteToml, startGatehouse } from '../harness/gatehouse.ts';
import { createTestCa } from '../harness/pki.ts';

const ca = createTestCa();
const cert = ca.issue(['app.test']);

test('/metrics: requests by site and status, error codes, latency, certificate expiry, process metrics', async (t) => {
  const backend = await startEchoUpstream();
  t.after(() => backend.close());
  const gh = await startGatehouse(t, {
    main: '[metrics]\nlisten = "127.0.0.1:0"\n',
    sites: { app: siteToml(['app.test'], cert, backend.url, 'deny_paths = ["^/private"]') },
  });
  for (let i = 0; i < 3; i++)
    assert.equal((await request(gh.port, { ca: ca.caPem, servername: 'app.test' })).status, 200);
  assert.equal((await request(gh.port, { ca: ca.caPem, servername: 'app.test', path: '/private' })).status, 403);
  assert.equal(
    (await request(gh.port, { ca: ca.caPem, servername: 'app.test', headers: { host: 'other.test' } })).status,
    421,
  );
  await gh.logLine((l) => l.status === 421, 'the 421 is over');

  const scraped = await scrape(gh.metrics!.port);
  assert.equal(scraped.status, 200);
  assert.match(scraped.type ?? '', /^text\/plain; version=0\.0\.4/);
  const text = scraped.body;
  assert.equal(sample(text, 'gatehouse_requests_total{site="app.test",code="200"}'), 3);
  assert.equal(sample(text, 'gatehouse_requests_total{site="app.test",code="403"}'), 1);
  assert.equal(sample(text, 'gatehouse_errors_total{site="app.test",error="ERR_ROUTE_DENIED"}'), 1);
  assert.equal(
    sample(text, 'gatehouse_requests_total{site="",code="421"}'),
    1,
    'a request no site took is counted without a site',
  );
  assert.equal(sample(text, 'gatehouse_request_duration_seconds_count{site="app.test"}'), 4);
  assert.equal(sample(text, 'gatehouse_requests_in_flight'), 0);
  const notAfter = new crypto.X509Certificate(cert.certPem).validTo;
  assert.equal(
    sample(text, 'gatehouse_certificate_not_after_seconds{site="app.test"}'),
    new Date(notAfter).getTime() / 1000,
  );
  assert.ok((sample(text, 'gatehouse_process_resident_memory_bytes') ?? 0) > 0, 'Node process metrics');
  assert.equal((await scrape(gh.metrics!.port, '/nope')).status, 404);
});

test('/metrics per upstream: requests by status class, errors by code, latency, servers up/down; refused WebSocket upgrades', async (t) => {
  const backend = await startEchoUpstream();
  t.after(() => backend.close());
  const refused = `http://127.0.0.1:${await refusedPort()}`;
  // Group "app": a live server and one that refuses connections (marked down for fail_timeout, requests move on).
  const gh = await startGatehouse(t, {
    main: '[metrics]\nlisten = "127.0.0.1:0"\n',
    sites: {
      app: groupSiteToml(
        cert,
        backend.url,
        `fail_timeout = "1h"\n`,
        `[[routes]]\npath = "/down/"\nupstream = "${refused}"\n[[routes]]\npath = "/nows/"\nupstream = "app"\nwebsocket = false\n[[routes]]\npath = "/files/"\nstatus = 410\n`,
      ).replace(`servers = ["${backend.url}"]`, `servers = ["${refused}", "${backend.url}"]`),
    },
  });
  const get = (path: string) => request(gh.port, { ca: ca.caPem, servername: 'app.test', path });
  for (let i = 0; i < 4; i++) assert.equal((await get('/')).status, 200);
  assert.equal((await get('/down/x')).status, 502);
  assert.equal((await get('/files/x')).status, 410, 'not proxied: no upstream series');
  // WebSocket: one tunnel opens (101), one upgrade is refused by the route (404) before any upstream is asked.
  const wsUrl = (path: string) => `wss://127.0.0.1:${gh.port}${path}`;
  const options = { ca: ca.caPem, servername: 'app.test', headers: { host: 'app.test' } };
  const open = new WebSocket(wsUrl('/'), options);
  await once(open, 'message');
  open.close();
  await once(open, 'close');
  const refusedUpgrade = new WebSocket(wsUrl('/nows/'), options);
  const [, response] = (await once(refusedUpgrade, 'unexpected-response')) as [unknown, { statusCode: number }];
  assert.equal(response.statusCode, 404);
  refusedUpgrade.on('error', () => {}); // terminate() before an open reports one
  refusedUpgrade.terminate();
  await gh.logLine((l) => l.msg === 'upgrade' && l.status === 404, 'the refused upgrade is over');
  await gh.logLine((l) => l.status === 410, 'the 410 is over');

  const text = (await scrape(gh.metrics!.port)).body;
  const app = 'site="app.test",upstream="app"';
  assert.equal(sample(text, `gatehouse_upstream_requests_total{${app},server="${backend.url}",class="2xx"}`), 4);
  assert.equal(sample(text, `gatehouse_upstream_requests_total{${app},server="${backend.url}",class="1xx"}`), 1);
  assert.equal(sample(text, `gatehouse_upstream_request_duration_seconds_count{${app}}`), 5);
  assert.equal(sample(text, `gatehouse_upstream_server_up{${app},server="${backend.url}"}`), 1);
  assert.equal(sample(text, `gatehouse_upstream_server_up{${app},server="${refused}"}`), 0, 'marked down');
  const down = `site="app.test",upstream="${refused}",server="${refused}"`;
  assert.equal(sample(text, `gatehouse_upstream_requests_total{${down},class="5xx"}`), 1);
  assert.equal(sample(text, `gatehouse_upstream_errors_total{${down},error="ERR_UPSTREAM_UNREACHABLE"}`), 1);
  assert.equal(
    text.split('\n').filter((l) => l.startsWith('gatehouse_upstream_requests_total{')).length,
    3,
    'the 410 route and the refused upgrade asked no upstream',
  );
  assert.equal(
    sample(text, 'gatehouse_websocket_upgrades_refused_total{site="app.test",code="404",error="ERR_ROUTE_NOT_FOUND"}'),
    1,
  );
  assert.equal(text.split('\n').filter((l) => l.startsWith('gatehouse_websocket_upgrades_refused_total{')).length, 1);
  assert.equal(sample(text, 'gatehouse_reloads_total{outcome="success"}'), 0, 'reload outcomes start at 0');
});

test('/metrics: logins, refreshes and logouts by outcome', async (t) => {
  const f = await startAuthFixture({ auth: { cookie_refresh: '1h' } });
  t.after(() => f.close());
  const series = async () => {
    const text = (await scrape(f.gh.listening.metrics!.port)).body;
    const value = (event: 'login' | 'refresh' | 'logout', outcome: string) =>
      sample(
        text,
        `gatehouse_auth_${{ login: 'logins', refresh: 'refreshes', logout: 'logouts' }[event]}_total{site="app.test",outcome="${outcome}"}`,
      ) ?? 0;
    return value;
  };
  const alice = f.browser();
  assert.equal((await alice.navigate(`${f.origin}/`, 'alice')).status, 200);
  const bob = await f.browser().navigate(`${f.origin}/`, 'bob');
  assert.equal(bob.status, 403, 'bob@other.test is outside email_domains');
  const stale = await f.browser().request(`${f.origin}/oauth2/callback?state=unknown&code=x`);
  assert.equal(stale.status, 400);
  const cancelled = await f.browser().request(`${f.origin}/oauth2/callback?error=access_denied&state=x`);
  assert.equal(cancelled.status, 403, 'the provider answered the login with an error');
  // A real login state (its cookie) with a code the provider never issued: the code exchange fails.
  const carol = f.browser();
  const challenge = await carol.request(`${f.origin}/page`);
  const state = new URL(challenge.headers.location!).searchParams.get('state')!;
  const badCode = await carol.request(`${f.origin}/oauth2/callback?state=${state}&code=never-issued`);
  assert.equal(badCode.status, 502, badCode.body);
  let value = await series();
  assert.equal(value('login', 'success'), 1);
  assert.equal(value('login', 'refused'), 1);
  assert.equal(value('login', 'invalid_state'), 1);
  assert.equal(value('login', 'provider_error'), 1);
  assert.equal(value('login', 'failed'), 1);

  // A refresh that succeeds (the session is older than cookie_refresh), then one the provider refuses.
  const auth = f.gh.runtime.siteList[0]!.auth!;
  const cookie = alice.sessionCookie(f.origin)![1];
  const session = (await auth.sessions.fromCookie(cookie))!;
  await auth.sessions.save({ ...session, refreshedAt: Date.now() - 2 * 3_600_000 });
  assert.equal((await alice.request(`${f.origin}/x`)).status, 200);
  const current = (await auth.sessions.fromCookie(cookie))!;
  await (await f.op.provider.RefreshToken.find((await auth.sessions.tokens(current)).refreshToken!))!.destroy();
  await auth.sessions.save({ ...current, refreshedAt: Date.now() - 2 * 3_600_000 });
  assert.equal((await alice.request(`${f.origin}/x`)).status, 302, 'the session ended: a new login');
  value = await series();
  assert.equal(value('refresh', 'success'), 1);
  assert.equal(value('refresh', 'session_ended'), 1);

  // Log in again, sign out (a session ended), sign out again (none left).
  assert.equal((await alice.navigate(`${f.origin}/`, 'alice')).status, 200);
  assert.equal((await alice.request(`${f.origin}/oauth2/sign_out`)).status, 302);
  assert.equal((await alice.request(`${f.origin}/oauth2/sign_out`)).status, 302);
  value = await series();
  assert.equal(value('login', 'success'), 2);
  assert.equal(value('logout', 'signed_out'), 1);
  assert.equal(value('logout', 'no_session'), 1);
});

test('config/grafana-dashboard.json: valid JSON whose every query names metrics that /metrics serves', async (t) => {
  const file = path.resolve(import.meta.dirname, '../../config/grafana-dashboard.json');
  const dashboard = JSON.parse(fs.readFileSync(file, 'utf8')) as {
    panels: Array<{ id: number; type: string; targets?: Array<{ expr: string }> }>;
    templating: { list: Array<{ definition?: string }> };
  };
  const queries = [
    ...dashboard.panels.flatMap((panel) => (panel.targets ?? []).map((target) => target.expr)),
    ...dashboard.templating.list.flatMap((variable) => (variable.definition ? [variable.definition] : [])),
  ];
  assert.ok(queries.length >= 20, `${queries.length} queries`);
  assert.equal(new Set(dashboard.panels.map((p) => p.id)).size, dashboard.panels.length, 'panel ids are unique');

  const backend = await startEchoUpstream();
  t.after(() => backend.close());
  const gh = await startGatehouse(t, {
    main: '[metrics]\nlisten = "127.0.0.1:0"\n',
    sites: { app: siteToml(['app.test'], cert, backend.url) },
  });
  assert.equal((await request(gh.port, { ca: ca.caPem, servername: 'app.test' })).status, 200);
  await gh.logLine((l) => l.status === 200, 'the request is over');
  const text = (await scrape(gh.metrics!.port)).body;
  // A family is served when /metrics declares it (# TYPE) or has a sample of that name (histogram _bucket, _count).
  const served = new Set([
    ...[...text.matchAll(/^# TYPE (\S+) /gm)].map((m) => m[1]!),
    ...[...text.matchAll(/^([a-z_:][a-z0-9_:]*)[{ ]/gm)].map((m) => m[1]!),
  ]);
  const queried = new Set(queries.flatMap((query) => query.match(/\bgatehouse_[a-z0-9_]+/g) ?? []));
  assert.ok(queried.size >= 15, [...queried].join(' '));
  const missing = [...queried].filter((name) => !served.has(name));
  assert.deepEqual(missing, [], 'every metric the dashboard queries is on /metrics');
});

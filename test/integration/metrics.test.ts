// Prometheus /metrics on the [metrics] listener: requests by site and status, Gatehouse's error codes, latency,
// certificate expiry and Node's process metrics. The cluster case (the primary sums its workers) is in lifecycle.test.ts.
import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import { test } from 'node:test';
import { startEchoUpstream } from '../harness/echo-upstream.ts';
import { request } from '../harness/clients.ts';
import { sample, scrape } from '../harness/metrics.ts';
import { siteToml, startGatehouse } from '../harness/gatehouse.ts';
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

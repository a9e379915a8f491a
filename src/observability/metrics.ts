// Prometheus metrics on the [metrics] listener (oauth2-proxy's metrics_address): requests by site and status,
// latency, requests in flight, Gatehouse's error codes, certificate expiry and ACME renewal failures (Caddy's
// metrics have none), plus Node's process metrics. One registry per runtime; with workers > 1 the primary
// serves the sum over the workers (prom-client's AggregatorRegistry asks each worker over the cluster channel).
// https://prometheus.io/docs/instrumenting/exposition_formats/
import cluster from 'node:cluster';
import client from 'prom-client';
import type { CertificateStore } from '../tls/certificate-store.ts';

// Constructing an AggregatorRegistry is what makes prom-client answer the primary's requests in a worker. Done when
// the worker starts, not once it serves: a worker that is still starting must answer too (with nothing yet), or
// every scrape in that moment would wait for it and fail.
if (cluster.isWorker) new client.AggregatorRegistry();

export class Metrics {
  readonly registry = new client.Registry();
  readonly #requests: client.Counter<'site' | 'code'>;
  readonly #duration: client.Histogram<'site'>;
  readonly #inFlight: client.Gauge;
  readonly #errors: client.Counter<'site' | 'error'>;
  readonly #renewalFailures: client.Counter<'site'>;
  /** The certificates whose expiry is reported: a reload hands the same metrics to the new configuration's store. */
  certificates: CertificateStore;

  constructor(certificates: CertificateStore) {
    this.certificates = certificates;
    const metrics = this;
    const registers = [this.registry];
    this.#requests = new client.Counter({
      name: 'gatehouse_requests_total',
      help: 'HTTP requests answered, by site and status code',
      labelNames: ['site', 'code'],
      registers,
    });
    this.#duration = new client.Histogram({
      name: 'gatehouse_request_duration_seconds',
      help: 'Time from request to the end of the response, by site',
      labelNames: ['site'],
      registers,
      buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30],
    });
    this.#inFlight = new client.Gauge({
      name: 'gatehouse_requests_in_flight',
      help: 'HTTP requests being answered',
      registers,
    });
    this.#errors = new client.Counter({
      name: 'gatehouse_errors_total',
      help: 'Requests Gatehouse answered with one of its error codes (ERR_…), by site',
      labelNames: ['site', 'error'],
      registers,
    });
    this.#renewalFailures = new client.Counter({
      name: 'gatehouse_acme_renewal_failures_total',
      help: 'Failed ACME orders, by site',
      labelNames: ['site'],
      registers,
    });
    new client.Gauge({
      name: 'gatehouse_certificate_not_after_seconds',
      help: 'When the certificate served for a site expires (Unix time)',
      labelNames: ['site'],
      registers,
      // Every worker serves the same certificates: the cluster total takes one value, not the sum.
      aggregator: 'max',
      collect() {
        this.reset();
        for (const { site, notAfter } of metrics.certificates.expiries()) this.set({ site }, notAfter.getTime() / 1000);
      },
    });
    client.collectDefaultMetrics({ register: this.registry, prefix: 'gatehouse_' });
  }

  requestStarted(): void {
    this.#inFlight.inc();
  }

  /** Once per request, when its response is over. `site` is empty for requests no site took (421, 400). */
  requestDone(site: string, code: number, seconds: number, error: string | undefined): void {
    this.#inFlight.dec();
    this.#requests.inc({ site, code });
    this.#duration.observe({ site }, seconds);
    if (error) this.#errors.inc({ site, error });
  }

  renewalFailed(site: string): void {
    this.#renewalFailures.inc({ site });
  }

  /** In a cluster worker: makes this the registry the primary's /metrics collects from this process. */
  shareWithPrimary(): void {
    client.AggregatorRegistry.setRegistries([this.registry]);
  }
}

/** In the cluster primary: the workers' metrics, summed (gauges as declared). */
export function clusterMetrics(): { text: () => Promise<string>; contentType: string } {
  const aggregator = new client.AggregatorRegistry();
  return { text: () => aggregator.clusterMetrics(), contentType: aggregator.contentType };
}

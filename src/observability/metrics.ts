// Prometheus metrics on the [metrics] listener (oauth2-proxy's metrics_address): requests by site and status,
// latency, requests in flight, Gatehouse's error codes, certificate expiry and ACME renewal failures (Caddy's
// metrics have none), per upstream (requests by status class, errors, latency, servers up), logins, refreshes and
// logouts by outcome, refused WebSocket upgrades, reloads by outcome, plus Node's process metrics. One registry per
// process, kept across reloads; with workers > 1 the primary serves the sum over the workers (each serving
// worker is asked over the cluster channel) and counts the reloads itself.
// https://prometheus.io/docs/instrumenting/exposition_formats/
import cluster, { type Worker } from 'node:cluster';
import client from 'prom-client';
import type { CertificateStore } from '../tls/certificate-store.ts';

// Constructing an AggregatorRegistry is what makes prom-client answer the primary's requests in a worker. Done when
// the worker starts, not once it serves: a worker that is still starting must answer too (with nothing yet), or
// every scrape in that moment would wait for it and fail.
if (cluster.isWorker) new client.AggregatorRegistry();

/** One upstream server as the pools see it now (passive health: marked down after a refused connection). */
export interface UpstreamState {
  site: string;
  upstream: string;
  server: string;
  up: boolean;
}

export type AuthEvent = 'login' | 'refresh' | 'logout';

/** How a reload ended: swapped in, refused for configuration errors, or failed while provisioning or binding. */
export type ReloadOutcome = 'success' | 'invalid_config' | 'failed';

const LATENCY_BUCKETS = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30];

/** gatehouse_reloads_total, in the registry of the process that receives SIGHUP (a cluster's primary). */
function reloadCounter(registers: client.Registry[]): client.Counter<'outcome'> {
  const counter = new client.Counter({
    name: 'gatehouse_reloads_total',
    help: 'Configuration reloads (SIGHUP), by outcome: success, invalid_config (refused), failed (the old one serves)',
    labelNames: ['outcome'],
    registers,
  });
  // Every outcome from 0, so rate() and alerts see the first failure.
  for (const outcome of ['success', 'invalid_config', 'failed']) counter.inc({ outcome }, 0);
  return counter;
}

export class Metrics {
  readonly registry = new client.Registry();
  readonly #requests: client.Counter<'site' | 'code'>;
  readonly #duration: client.Histogram<'site'>;
  readonly #inFlight: client.Gauge;
  readonly #errors: client.Counter<'site' | 'error'>;
  readonly #renewalFailures: client.Counter<'site'>;
  readonly #upstreamRequests: client.Counter<'site' | 'upstream' | 'server' | 'class'>;
  readonly #upstreamErrors: client.Counter<'site' | 'upstream' | 'server' | 'error'>;
  readonly #upstreamDuration: client.Histogram<'site' | 'upstream'>;
  readonly #auth: Record<AuthEvent, client.Counter<'site' | 'outcome'>>;
  readonly #upgradesRefused: client.Counter<'site' | 'code' | 'error'>;
  readonly #reloads?: client.Counter<'outcome'>;
  /** The certificates whose expiry is reported: a reload hands the same metrics to the new configuration's store. */
  certificates: CertificateStore;
  /** The upstream servers of the configuration being served (set by the runtime, again at every reload). */
  upstreams: () => Iterable<UpstreamState> = () => [];

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
      buckets: LATENCY_BUCKETS,
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
    this.#upstreamRequests = new client.Counter({
      name: 'gatehouse_upstream_requests_total',
      help: 'Requests proxied to an upstream group (HTTP and WebSocket), by server and the status class answered',
      labelNames: ['site', 'upstream', 'server', 'class'],
      registers,
    });
    this.#upstreamErrors = new client.Counter({
      name: 'gatehouse_upstream_errors_total',
      help: 'Proxied requests Gatehouse answered with an error code (unreachable, timeout, busy, …), by upstream',
      labelNames: ['site', 'upstream', 'server', 'error'],
      registers,
    });
    this.#upstreamDuration = new client.Histogram({
      name: 'gatehouse_upstream_request_duration_seconds',
      help: 'Time from request to the end of the response, for requests proxied to an upstream group',
      labelNames: ['site', 'upstream'],
      registers,
      buckets: LATENCY_BUCKETS,
    });
    new client.Gauge({
      name: 'gatehouse_upstream_server_up',
      help: 'Whether an upstream server takes requests (1) or is skipped (0): for fail_timeout after a failure, or while its health_check fails',
      labelNames: ['site', 'upstream', 'server'],
      registers,
      // Each worker keeps its own view: a server is up only when no worker skips it.
      aggregator: 'min',
      collect() {
        this.reset();
        for (const { site, upstream, server, up } of metrics.upstreams()) this.set({ site, upstream, server }, +up);
      },
    });
    const authCounter = (name: string, help: string) =>
      new client.Counter({
        name,
        help,
        labelNames: ['site', 'outcome'],
        registers,
      });
    this.#auth = {
      login: authCounter(
        'gatehouse_auth_logins_total',
        'Logins ending at /oauth2/callback, by outcome: success, refused (policy), failed (code exchange), provider_error, invalid_state',
      ),
      refresh: authCounter(
        'gatehouse_auth_refreshes_total',
        'Token refreshes sent to the provider, by outcome: success, session_ended (refused: the user logs in again), failed (retried)',
      ),
      logout: authCounter(
        'gatehouse_auth_logouts_total',
        'Logouts, by outcome: signed_out, no_session (/oauth2/sign_out without one), frontchannel (sessions ended by the provider)',
      ),
    };
    this.#upgradesRefused = new client.Counter({
      name: 'gatehouse_websocket_upgrades_refused_total',
      help: 'WebSocket upgrades not answered 101, by site, status and error code (empty: the upstream refused)',
      labelNames: ['site', 'code', 'error'],
      registers,
    });
    // A cluster's primary receives SIGHUP and counts the reloads of all its workers (runtime/cluster-primary.ts).
    if (!cluster.isWorker) this.#reloads = reloadCounter(registers);
    client.collectDefaultMetrics({ register: this.registry, prefix: 'gatehouse_' });
  }

  /**
   * Once per request that was proxied (or refused for its upstream, e.g. busy), when it is over: `server` is the
   * server that answered or was tried last ('' when none was), `error` Gatehouse's own error code.
   */
  upstreamDone(
    site: string,
    upstream: string,
    server: string,
    code: number,
    seconds: number,
    error: string | undefined,
  ): void {
    this.#upstreamRequests.inc({ site, upstream, server, class: `${Math.trunc(code / 100)}xx` });
    this.#upstreamDuration.observe({ site, upstream }, seconds);
    if (error) this.#upstreamErrors.inc({ site, upstream, server, error });
  }

  authEvent(site: string, event: AuthEvent, outcome: string, count = 1): void {
    this.#auth[event].inc({ site, outcome }, count);
  }

  upgradeRefused(site: string, code: number, error: string | undefined): void {
    this.#upgradesRefused.inc({ site, code, error: error ?? '' });
  }

  reloaded(outcome: ReloadOutcome): void {
    this.#reloads?.inc({ outcome });
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

/** prom-client's cluster messages; its worker side (the AggregatorRegistry made above) answers them. */
const METRICS_QUERY = 'prom-client:getMetricsReq';
const METRICS_ANSWER = 'prom-client:getMetricsRes';
/** A serving worker that has not answered by then is left out of that scrape rather than failing it. */
const WORKER_ANSWER_MS = 2_000;

/**
 * In the cluster primary: the serving workers' metrics, summed (gauges as declared), followed by the primary's own
 * (the reloads it ordered). Only workers that listen are asked: prom-client's own clusterMetrics() asks every
 * connected worker and fails the whole scrape after 5 s when one that is still starting cannot answer yet.
 */
export function clusterMetrics(serving: () => Worker[]): {
  text: () => Promise<string>;
  contentType: string;
  reloaded: (outcome: ReloadOutcome) => void;
} {
  const own = new client.Registry();
  const reloads = reloadCounter([own]);
  let queries = 0;
  return {
    text: async () => {
      const requestId = ++queries;
      const answers = await Promise.all(serving().map((worker) => askForMetrics(worker, requestId)));
      const summed = client.AggregatorRegistry.aggregate(answers.flat());
      return `${await summed.metrics()}\n${await own.metrics()}`;
    },
    contentType: own.contentType,
    reloaded: (outcome) => reloads.inc({ outcome }),
  };
}

/** What one worker answers: the JSON form of each of its registries. */
type WorkerMetrics = Parameters<typeof client.AggregatorRegistry.aggregate>[0];

function askForMetrics(worker: Worker, requestId: number): Promise<WorkerMetrics> {
  return new Promise((resolve) => {
    const timer = setTimeout(() => done([]), WORKER_ANSWER_MS);
    const onMessage = (message: { type?: string; requestId?: number; metrics?: WorkerMetrics }) => {
      if (message?.type === METRICS_ANSWER && message.requestId === requestId) done(message.metrics ?? []);
    };
    function done(metrics: WorkerMetrics) {
      clearTimeout(timer);
      worker.off('message', onMessage);
      resolve(metrics);
    }
    worker.on('message', onMessage);
    if (worker.isConnected()) worker.send({ type: METRICS_QUERY, requestId });
    else done([]);
  });
}

// The process-wide health listener ([metrics] listen, oauth2-proxy's metrics_address): /ping = the process
// answers; /ready = every site's identity provider discovery has loaded (in every worker); /metrics = Prometheus.
// Fixed paths on a separate listener, so a health check can never stand in for authentication on a site
// (oauth2-proxy GHSA-5hvv-m4w4-gf6v). With workers > 1 the primary serves it for the whole cluster.
import http from 'node:http';

export interface Readiness {
  ready: boolean;
  sites: Array<{ site: string; provider_ready: boolean }>;
  /** The shared session store (Redis): degraded does not make the process unready (cached sessions still serve and
   *  every instance shares the one Redis: taking them all out of the balancer would turn a blip into an outage). */
  store?: StoreReadiness;
  /** Where ACME keeps certificates, when shared (Redis): degraded = certificates serve from memory, renewals wait. */
  acme_storage?: StoreReadiness;
}

export interface StoreReadiness {
  backend: 'redis';
  state: 'up' | 'degraded';
  since: string;
  reason?: string;
}

export interface HealthSources {
  readiness(): Promise<Readiness>;
  metrics(): Promise<{ text: string; contentType: string }>;
}

export function createHealthServer(sources: HealthSources): http.Server {
  return http.createServer((req, res) => {
    const path = (req.url ?? '').split('?')[0];
    if (path === '/ping') return void res.writeHead(200, { 'content-type': 'text/plain' }).end('OK');
    const answer =
      path === '/ready'
        ? sources
            .readiness()
            .then((r) =>
              res.writeHead(r.ready ? 200 : 503, { 'content-type': 'application/json' }).end(JSON.stringify(r)),
            )
        : path === '/metrics'
          ? sources.metrics().then((m) => res.writeHead(200, { 'content-type': m.contentType }).end(m.text))
          : Promise.resolve(res.writeHead(404, { 'content-type': 'text/plain' }).end('Not Found'));
    answer.catch((error: Error) => {
      if (!res.headersSent) res.writeHead(500, { 'content-type': 'text/plain' }).end(`${error.message}\n`);
    });
  });
}

// The process-wide health listener ([metrics] listen, oauth2-proxy's metrics_address): /ping = the process
// answers; /ready = every site's identity provider discovery has loaded. Fixed paths on a separate listener, so a
// health check can never stand in for authentication on a site (oauth2-proxy GHSA-5hvv-m4w4-gf6v).
import http from 'node:http';
import type { Runtime } from '../runtime/runtime.ts';

export function createHealthServer(runtime: Runtime): http.Server {
  return http.createServer((req, res) => {
    const path = (req.url ?? '').split('?')[0];
    if (path === '/ping') return void res.writeHead(200, { 'content-type': 'text/plain' }).end('OK');
    if (path === '/ready') {
      const sites = runtime.siteList.filter((s) => s.auth).map((s) => ({ site: s.config.name, provider_ready: s.auth!.oidc.ready }));
      const ready = runtime.ready() && !runtime.stopping;
      return void res.writeHead(ready ? 200 : 503, { 'content-type': 'application/json' }).end(JSON.stringify({ ready, sites }));
    }
    res.writeHead(404, { 'content-type': 'text/plain' }).end('Not Found');
  });
}

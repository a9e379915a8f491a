import type { Scenario } from '../lib/types.ts';

export default {
  name: 'new-connection-resumed',
  title:
    'A new TCP connection per request with TLS 1.3 session resumption (ticket): bench/clients/tls-loop.ts, 50 loops',
  systems: ['nginx', 'gatehouse', 'nginx-auth', 'caddy'],
  backend: 'nginx',
  load: { tool: 'tls-loop', path: '/', connections: 50, resume: true },
} satisfies Scenario;

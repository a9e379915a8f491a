import type { Scenario } from '../lib/types.ts';

export default {
  name: 'sni-50',
  title:
    '50 server names with their own certificates; each request a new connection to the next name (full handshake): bench/clients/tls-loop.ts, 50 loops',
  systems: ['nginx', 'gatehouse', 'caddy'],
  names: 50,
  backend: 'nginx',
  load: { tool: 'tls-loop', path: '/', connections: 50, resume: false },
} satisfies Scenario;

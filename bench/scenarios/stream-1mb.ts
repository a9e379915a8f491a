import type { Scenario } from '../lib/types.ts';

export default {
  name: 'stream-1mb',
  title: '1 MB response streamed through: wrk, 10 keep-alive connections',
  systems: ['nginx', 'gatehouse', 'caddy'],
  backend: 'nginx',
  load: { tool: 'wrk', path: '/1mb', connections: 10 },
} satisfies Scenario;

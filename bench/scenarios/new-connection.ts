import type { Scenario } from '../lib/types.ts';

export default {
  name: 'new-connection',
  title: 'A new TCP + full TLS 1.3 handshake per request (no resumption): wrk with Connection: close, 50 connections',
  systems: ['nginx', 'gatehouse', 'nginx-auth', 'caddy'],
  backend: 'nginx',
  load: { tool: 'wrk', path: '/', connections: 50, close: true },
} satisfies Scenario;

import type { Scenario } from '../lib/types.ts';

export default {
  name: 'h2',
  title: 'HTTP/2 GET of a 100-byte body: h2load, 10 connections × 5 streams',
  systems: ['nginx', 'gatehouse', 'nginx-auth', 'caddy'],
  backend: 'nginx',
  load: { tool: 'h2load', path: '/', connections: 10, streams: 5 },
} satisfies Scenario;

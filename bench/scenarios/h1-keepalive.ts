import type { Scenario } from '../lib/types.ts';

export default {
  name: 'h1-keepalive',
  title: 'HTTPS/1.1 keep-alive GET of a 100-byte body: wrk, 50 connections',
  systems: ['nginx', 'gatehouse', 'nginx-auth', 'caddy'],
  backend: 'nginx',
  load: { tool: 'wrk', path: '/', connections: 50 },
} satisfies Scenario;

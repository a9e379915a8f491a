import type { Scenario } from '../lib/types.ts';

export default {
  name: 'open-loop-h1',
  title:
    "HTTPS/1.1 keep-alive GET of a 100-byte body at a fixed rate, the same for every system: 50 % of nginx + auth_request's saturated rate under h1-keepalive's load, measured once in the same run (or --rate): h2load --h1 --rps, 50 connections",
  systems: ['nginx', 'gatehouse', 'nginx-auth', 'caddy'],
  backend: 'nginx',
  load: { tool: 'h2load', path: '/', connections: 50, streams: 1, h1: true, openLoop: true },
  openLoop: { share: 0.5, calibrate: { tool: 'wrk', path: '/', connections: 50 } },
} satisfies Scenario;

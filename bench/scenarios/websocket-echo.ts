import type { Scenario } from '../lib/types.ts';

export default {
  name: 'websocket-echo',
  title: 'WebSocket echo round-trips of 100-byte messages: bench/clients/ws-echo.ts, 50 sockets, Node ws echo upstream',
  systems: ['nginx', 'gatehouse', 'caddy'],
  backend: 'ws-echo',
  load: { tool: 'ws-echo', path: '/', connections: 50, bytes: 100 },
} satisfies Scenario;

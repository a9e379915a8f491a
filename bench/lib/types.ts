// The shapes shared by the harness, the systems and the scenario files.

/**
 * gatehouse-baseline: Gatehouse from another checkout (--baseline <dir>), to measure a change before/after in the same run.
 * node-undici-https / node-undici-h2compat: the smallest Node forwarder (servers/undici-forwarder.ts), for reference.
 * These three run only when named in --systems (and only in scenarios that compare Gatehouse).
 */
export const SYSTEM_NAMES = [
  'nginx',
  'gatehouse',
  'nginx-auth',
  'caddy',
  'gatehouse-baseline',
  'node-undici-https',
  'node-undici-h2compat',
] as const;
export type SystemName = (typeof SYSTEM_NAMES)[number];

/** One load generator invocation; `seconds` and the target come from the harness. */
export type LoadSpec =
  /** wrk, HTTP/1.1 keep-alive (or a new connection per request with `close`). */
  | { tool: 'wrk'; path: string; connections: number; close?: boolean }
  /** h2load, HTTP/2: connections × streams in flight. */
  | { tool: 'h2load'; path: string; connections: number; streams: number }
  /** bench/clients/tls-loop.ts: a new TLS connection per request, optionally resuming, optionally rotating SNI names. */
  | { tool: 'tls-loop'; path: string; connections: number; resume: boolean }
  /** bench/clients/ws-echo.ts: WebSocket round-trips of `bytes`-sized messages on `connections` sockets. */
  | { tool: 'ws-echo'; path: string; connections: number; bytes: number };

export interface Scenario {
  name: string;
  /** One line for the report. */
  title: string;
  /** The systems compared; nginx is always measured too, as every ratio's reference. */
  systems: readonly SystemName[];
  /** Number of site names, each with its own certificate (default 1: "localhost"). */
  names?: number;
  /** Upstream: the nginx backend (100-byte body at /, 1 MB at /1mb) or a Node WebSocket echo server. */
  backend: 'nginx' | 'ws-echo';
  load: LoadSpec;
  /** Extra TOML appended to every Gatehouse site file (e.g. an auth policy) and environment for the process. */
  gatehouse?: {
    /** A string, or made per start from the port Gatehouse will listen on (e.g. an [auth] table whose IdP must know the redirect URL). */
    siteToml?: string | ((o: { port: number; names: readonly string[] }) => string | Promise<string>);
    env?: Record<string, string>;
  };
  /**
   * Called once the system under test is up, before the warm-up: returns extra request headers for the load
   * generator (e.g. a session cookie obtained by logging in). Without it every system gets the same cookie header.
   */
  prepare?: (target: Target) => Promise<Prepared>;
  /** Called once the scenario's runs are over: stops what the scenario started itself (nothing may keep the harness alive). */
  teardown?: () => Promise<void>;
}

/** What a scenario's prepare hands the load generator. */
export interface Prepared {
  /** Extra request headers (e.g. the cookie of a login). */
  headers?: Record<string, string>;
  /** Cookie header values to rotate through, one per request (wrk only): many sessions instead of one. */
  cookies?: string[];
}

/** Where the load goes. */
export interface Target {
  system: SystemName;
  port: number;
  /** Server names served (the first is also the default). */
  names: string[];
  /** The run's folder: generated configs, certificates. */
  dir: string;
  /** This start's own folder (for Gatehouse: its config folder, with state/sessions.sqlite). */
  systemDir: string;
}

/** What a load generator reports for one measured run. */
export interface LoadResult {
  requests: number;
  seconds: number;
  errors: number;
  p50Ms?: number;
  p99Ms?: number;
  /** Share of TLS sessions resumed (tls-loop only). */
  resumed?: number;
}

/** One measured run of one system in one scenario. */
export interface Sample extends LoadResult {
  scenario: string;
  system: SystemName;
  rep: number;
  rps: number;
  /** Server CPU (user+system) per request in µs; nginx-auth includes the auth service. */
  cpuUsPerReq: number;
  /** Share of one core the server side was busy during the run. */
  busy: number;
  peakRssMb: number;
  /** New connections the nginx backend accepted during the run (upstream keep-alive check). */
  upstreamConns?: number;
}

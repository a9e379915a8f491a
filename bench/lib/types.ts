// The shapes shared by the harness, the systems and the scenario files.

/**
 * gatehouse-baseline: Gatehouse from a git ref or another checkout (--baseline), reported as gatehouse@<ref>, to
 * measure a change before/after in the same run.
 * node-undici-https / node-undici-h2compat: the smallest Node forwarder (servers/undici-forwarder.ts), for reference.
 * node-rawpool-https: node:https + raw keep-alive upstream sockets framed by Node's llhttp (servers/rawpool-forwarder.ts).
 * node-ownloop-tls: a tls.Server with its own HTTP/1.1 loop on Node's llhttp + the same raw pool (servers/ownloop-tls.ts).
 * The reference systems run only when named in --systems (and only in scenarios that compare Gatehouse).
 */
export const SYSTEM_NAMES = [
  'nginx',
  'gatehouse',
  'nginx-auth',
  'caddy',
  'gatehouse-baseline',
  'node-undici-https',
  'node-undici-h2compat',
  'node-rawpool-https',
  'node-ownloop-tls',
] as const;
export type SystemName = (typeof SYSTEM_NAMES)[number];

/** The reference forwarders: HTTP/1.1 (one of them also HTTP/2), no WebSocket, one certificate. */
export const REFERENCE_SYSTEMS: readonly SystemName[] = [
  'node-undici-https',
  'node-undici-h2compat',
  'node-rawpool-https',
  'node-ownloop-tls',
];

/** Why a system cannot run a scenario's load (it is skipped there, with this reason), or undefined when it can. */
export function unsupported(system: SystemName, scenario: Scenario): string | undefined {
  if (!REFERENCE_SYSTEMS.includes(system)) return undefined;
  if (scenario.load.tool === 'ws-echo') return 'no WebSocket proxying';
  if ((scenario.names ?? 1) > 1) return 'one certificate only';
  if (scenario.load.tool === 'h2load' && !scenario.load.h1 && system !== 'node-undici-h2compat') return 'HTTP/1.1 only';
  return undefined;
}

/** One load generator invocation; `seconds` and the target come from the harness. */
export type LoadSpec =
  /** wrk, HTTP/1.1 keep-alive (or a new connection per request with `close`). */
  | { tool: 'wrk'; path: string; connections: number; close?: boolean }
  /**
   * h2load, HTTP/2 (or HTTP/1.1 with `h1`): connections × streams in flight. With `openLoop` it offers a fixed
   * total rate (h2load --rps, split over the connections) set by the harness: see Scenario.openLoop.
   */
  | { tool: 'h2load'; path: string; connections: number; streams: number; h1?: boolean; openLoop?: boolean }
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
  /**
   * An open-loop (fixed-rate) scenario: every system is offered the same rate, `share` of nginx-auth's saturated
   * rate under `calibrate` measured once in the same run (or the --rate option), so latency is compared at equal load.
   */
  openLoop?: { share: number; calibrate: LoadSpec };
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
  /** The fixed total rate offered (open-loop scenarios only), requests per second. */
  offeredRps?: number;
}

/** One measured run of one system in one scenario. */
export interface Sample extends LoadResult {
  scenario: string;
  system: SystemName;
  /** The name in the report: the system's, or gatehouse@<ref> for the baseline. */
  label: string;
  rep: number;
  rps: number;
  /** Server CPU (user+system) per request in µs; nginx-auth includes the auth service. */
  cpuUsPerReq: number;
  /** Share of one core the server side was busy during the run. */
  busy: number;
  peakRssMb: number;
  /** Highest sum of the system's processes' VmRSS, sampled every 200 ms during the measured window. */
  windowRssMb: number;
  /**
   * CPU that processes the harness did not start took on the measured cores during the window, in % of one core:
   * busy time of those cores (/proc/stat) minus the CPU of the system, the upstream, the load generator and the harness.
   */
  foreignLoadPct: number;
  /** foreignLoadPct above --max-foreign-load: the figures of this window must not be published. */
  contended: boolean;
  /** New connections the nginx backend accepted during the run (upstream keep-alive check). */
  upstreamConns?: number;
}

// The state one translation carries from directive to directive, and the three places a directive can end up: a
// generated line, a note saying why it needs no setting (implied), or a refusal (`file:line: directive: why`).
import type { Finding } from './auth-options.ts';
import type { Directive } from './nginx-parse.ts';
import type { OAuth2ProxyConfig } from './oauth2-proxy.ts';
import { formatSource, type Entry, type Source } from './toml-writer.ts';

export interface ImportResult {
  files: { name: string; text: string; mode?: number }[];
  refused: Finding[];
  implied: Finding[];
}

export interface TranslateOptions {
  /** The nginx prefix (folder of the main file): relative certificate paths are resolved there. */
  prefix: string;
}

/** An upstream {} block, read once at http level; a site copies it when one of its locations proxies to it. */
export interface Upstream {
  d: Directive;
  servers: string[];
  lines: Entry[];
}

/** One site file in the making. */
export interface SiteOut {
  names: string[];
  fileName: string;
  top: Entry[];
  tls: Entry[];
  upstreams: Map<string, Entry[]>;
  routes: Entry[][];
  auth: Entry[];
  notes: Entry[];
  /** auth_request_set variables of the server level: $name → $upstream_http_… */
  authVars: Map<string, string>;
  /** Left out for a reason already reported (its protection could not be translated). */
  leftOut?: boolean;
}

/** The tables of gatehouse.toml, each a list of lines. */
export interface GlobalTables {
  top: Entry[];
  https: Entry[];
  http: Entry[];
  log: Entry[];
  proxy: Entry[];
  acme: Entry[];
  metrics: Entry[];
  store: Entry[];
  notes: Entry[];
}

export interface Listen {
  value: string;
  from: Source;
}

export interface TranslateContext {
  cfgs: OAuth2ProxyConfig[];
  options: TranslateOptions;
  refused: Finding[];
  implied: Finding[];
  /** Directives refused already by refuseOnce(). */
  refusedOnce: Set<Directive>;
  global: GlobalTables;
  httpsListen: Listen[];
  httpListen: Listen[];
  upstreamBlocks: Map<string, Upstream>;
  limitZones: Map<string, { rate: string; d: Directive }>;
  sites: SiteOut[];
  /** Each server name taken by a site, with the server block that took it. */
  siteNames: Map<string, Directive>;
  secretFiles: ImportResult['files'];
  usedCfgs: Set<OAuth2ProxyConfig>;
  usesAcme?: Directive;
  /** The .cfg whose Redis settings are [store] (the store is process-wide: one set for all sites). */
  storeCfg?: OAuth2ProxyConfig;
  storePassword?: { value: string; from: Source };
  proxyProtocol?: Directive;
}

export function newContext(cfgs: OAuth2ProxyConfig[], options: TranslateOptions): TranslateContext {
  return {
    cfgs,
    options,
    refused: [],
    implied: [],
    refusedOnce: new Set(),
    global: { top: [], https: [], http: [], log: [], proxy: [], acme: [], metrics: [], store: [], notes: [] },
    httpsListen: [],
    httpListen: [],
    upstreamBlocks: new Map(),
    limitZones: new Map(),
    sites: [],
    siteNames: new Map(),
    secretFiles: [],
    usedCfgs: new Set(),
  };
}

export const src = (d: Directive): Source => ({ file: d.file, line: d.line });
export const show = (d: Directive) => [d.name, ...d.args].join(' ');

export function refuse(ctx: TranslateContext, d: Directive, why: string, name = d.name): void {
  ctx.refused.push({ from: src(d), name, why });
}

export function refuseOnce(ctx: TranslateContext, d: Directive, why: string): void {
  if (!ctx.refusedOnce.has(d)) refuse(ctx, d, why);
  ctx.refusedOnce.add(d);
}

export function imply(ctx: TranslateContext, d: Directive, why: string): void {
  ctx.implied.push({ from: src(d), name: d.name, why });
}

/** A comment line in the output saying why the directive needs no setting, and the same as an implied finding. */
export function note(ctx: TranslateContext, list: Entry[], d: Directive, why: string): void {
  list.push({ kind: 'comment', text: `${formatSource(src(d))}: ${show(d)}: ${why}` });
  imply(ctx, d, why);
}

export function dedupe(list: Source[]): Source[] {
  const seen = new Set<string>();
  return list.filter((s) => {
    const key = formatSource(s);
    if (seen.has(key)) return false;
    seen.add(key);
    return true;
  });
}

// Load and validate gatehouse.toml plus config/sites/*.toml. Every problem is collected with file, line and key,
// all are reported together, and nothing is returned unless the whole configuration is valid.
import crypto from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type { z } from 'zod';
import { buildAuthSettings } from './auth-settings.ts';
import { UNSUPPORTED_AUTH_OPTIONS } from './auth-schema.ts';
import { acmeConfig } from './acme-config.ts';
import type { Config, FileTls, Route, RouteAction, Site, UpstreamGroup } from './model.ts';
import { DEFAULT_MAX_PENDING, globalSchema, siteSchema, type GlobalSettings, type RouteSettings, type SiteSettings } from './schema.ts';
import { resolveSecretReferences } from './secrets.ts';
import { parseTomlSource, TomlSyntaxError, type TomlSource } from './toml-source.ts';

export interface ConfigProblem { file: string; line: number; key: string; message: string }

export class ConfigError extends Error {
  readonly problems: ConfigProblem[];
  constructor(problems: ConfigProblem[]) {
    super(`${problems.length} configuration error${problems.length === 1 ? '' : 's'}:\n${problems.map(formatProblem).join('\n')}`);
    this.problems = problems;
  }
}

export function formatProblem(p: ConfigProblem): string {
  return `${p.file}:${p.line}: ${p.key ? `${p.key}: ` : ''}${p.message}`;
}

export const MAIN_FILE = 'gatehouse.toml';

export function loadConfig(dir: string, env: NodeJS.ProcessEnv = process.env): Config {
  const problems: ConfigProblem[] = [];
  const configDir = path.resolve(dir);
  const mainFile = path.join(configDir, MAIN_FILE);
  const main = readValidated(mainFile, globalSchema, configDir, env, problems);
  // An invalid gatehouse.toml must not hide the problems of the site files: those are still read and checked,
  // against the defaults (and the sites_dir the file names, when that much is readable).
  const settings = main.value ?? globalSchema.parse({ sites_dir: stringAt(main.source?.value, 'sites_dir') });
  const lineOf = (at: (string | number)[]) => main.source?.lineOf(at) ?? 1;

  const sitesDir = path.resolve(configDir, settings.sites_dir);
  let siteFiles: string[] = [];
  try {
    siteFiles = fs.readdirSync(sitesDir).filter((f) => f.endsWith('.toml')).sort().map((f) => path.join(sitesDir, f));
  } catch (error) {
    problems.push({ file: mainFile, line: lineOf(['sites_dir']), key: 'sites_dir', message: `cannot read ${sitesDir}: ${(error as NodeJS.ErrnoException).code}` });
  }
  if (siteFiles.length === 0 && problems.length === 0) {
    problems.push({ file: mainFile, line: lineOf(['sites_dir']), key: 'sites_dir', message: `no site files (*.toml) in ${sitesDir}` });
  }

  const sites: Site[] = [];
  const owners = new Map<string, { file: string; line: number }>();
  for (const file of siteFiles) {
    const parsed = readValidated(file, siteSchema, configDir, env, problems);
    const { value, source, reported } = parsed;
    if (!value || !source) continue;
    const siteProblems: ConfigProblem[] = [];
    const site = buildSite(file, value, source, settings, configDir, siteProblems);
    problems.push(...siteProblems.filter((p) => !followsFrom(p.key, reported)));
    value.server_names.forEach((name, i) => {
      const line = source.lineOf(['server_names', i]);
      const owner = owners.get(name);
      if (owner) problems.push({ file, line, key: `server_names[${i}]`, message: `"${name}" is already served by ${owner.file}:${owner.line}` });
      else owners.set(name, { file, line });
    });
    if (site) sites.push(site);
  }

  const defaultSite = settings.https.default_site;
  if (defaultSite && problems.length === 0 && !owners.has(defaultSite)) {
    problems.push({ file: mainFile, line: lineOf(['https', 'default_site']), key: 'https.default_site', message: `no site has the server name "${defaultSite}"` });
  }
  const acme = acmeConfig(settings.acme, configDir, (key, message) =>
    problems.push({ file: mainFile, line: lineOf(['acme', key]), key: `acme.${key}`, message }));
  const acmeSites = sites.filter((site) => site.tls.source === 'acme');
  if (acmeSites.length > 0 && !acme.termsOfServiceAgreed) {
    problems.push({ file: mainFile, line: lineOf(['acme', 'terms_of_service_agreed']), key: 'acme.terms_of_service_agreed',
      message: `${acmeSites[0]!.file} uses tls.acme: set terms_of_service_agreed = true to accept the CA's terms (${acme.directoryUrl})` });
  }
  if (problems.length > 0) throw new ConfigError(problems);

  const { https, log, proxy, lifecycle, metrics } = settings;
  const workers = settings.workers === 'auto' ? os.availableParallelism() : settings.workers;
  // HTTP-01 needs a plain-HTTP listener: without an [http] listen, ACME sites get one on [acme] http_port.
  const http = acmeSites.length > 0 && settings.http.listen.length === 0
    ? { ...settings.http, listen: [{ host: '0.0.0.0', port: acme.httpPort }] } : settings.http;
  const session = { ...settings.session, file: path.resolve(configDir, settings.session.path) };
  return deepFreeze({ dir: configDir, file: mainFile, https, http, log, proxy, lifecycle, workers, acme, session, metrics, sites });
}

/**
 * Reads, resolves and validates one file, pushing every problem. When some keys are wrong, those keys are pruned
 * and the rest validated again, so the checks that need a whole value (files, cross-file, routes) still run and
 * everything is reported in one go; `reported` names the pruned keys, whose follow-on problems are not repeated.
 * No value when the file cannot be parsed or is still invalid once pruned.
 */
function readValidated<S extends z.ZodType>(file: string, schema: S, configDir: string, env: NodeJS.ProcessEnv, problems: ConfigProblem[]):
  { value?: z.output<S>; source?: TomlSource; reported: string[] } {
  let source: TomlSource;
  try {
    source = parseTomlSource(fs.readFileSync(file, 'utf8'));
  } catch (error) {
    if (error instanceof TomlSyntaxError) problems.push({ file, line: error.line, key: '', message: `TOML syntax: ${error.message}` });
    else problems.push({ file, line: 1, key: '', message: `cannot read: ${(error as NodeJS.ErrnoException).code ?? String(error)}` });
    return { reported: [] };
  }
  const wrong: (string | number)[][] = [];
  const secretProblems: { path: (string | number)[]; message: string }[] = [];
  const resolved = resolveSecretReferences(source.value, configDir, env, secretProblems);
  for (const p of secretProblems) {
    problems.push({ file, line: source.lineOf(p.path), key: keyPath(p.path), message: p.message });
    wrong.push(p.path);
  }

  const result = schema.safeParse(resolved);
  if (!result.success) {
    for (const issue of result.error.issues) {
      const at = issue.path.map((k) => (typeof k === 'symbol' ? String(k) : k));
      if (issue.code === 'unrecognized_keys') {
        for (const key of issue.keys) {
          const why = at.length === 1 && at[0] === 'auth' ? UNSUPPORTED_AUTH_OPTIONS[key] : undefined;
          const message = why ? `oauth2-proxy option not supported by Gatehouse: ${why}` : 'unknown key';
          problems.push({ file, line: source.lineOf([...at, key]), key: keyPath([...at, key]), message });
          wrong.push([...at, key]);
        }
      } else {
        problems.push({ file, line: source.lineOf(at), key: keyPath(at), message: issue.message });
        wrong.push(at);
      }
    }
  }
  const reported = wrong.map(keyPath);
  if (wrong.length === 0 && result.success) return { value: result.data, source, reported };
  // A whole file, or an item of a list, cannot be left out without shifting what the other problems point at.
  if (wrong.some((at) => at.length === 0 || typeof at.at(-1) === 'number')) return { source, reported };
  const pruned = schema.safeParse(withoutKeys(resolved, wrong));
  return pruned.success ? { value: pruned.data, source, reported } : { source, reported };
}

/** A copy of a parsed TOML value without the keys at the given paths. */
function withoutKeys(value: unknown, paths: (string | number)[][]): unknown {
  const copy = structuredClone(value);
  for (const at of paths) {
    let parent: unknown = copy;
    for (const key of at.slice(0, -1)) parent = parent && typeof parent === 'object' ? (parent as Record<string | number, unknown>)[key] : undefined;
    if (parent && typeof parent === 'object') delete (parent as Record<string | number, unknown>)[at.at(-1)!];
  }
  return copy;
}

/** Whether a later problem is only the consequence of a key already reported (the same key, inside it, or around it). */
function followsFrom(key: string, reported: string[]): boolean {
  return reported.some((r) => key === r || key.startsWith(`${r}.`) || key.startsWith(`${r}[`) || r.startsWith(`${key}.`) || r.startsWith(`${key}[`));
}

function buildSite(file: string, raw: SiteSettings, source: TomlSource, settings: GlobalSettings, configDir: string, problems: ConfigProblem[]): Site | undefined {
  const before = problems.length;
  const problem = (at: (string | number)[], message: string) => problems.push({ file, line: source.lineOf(at), key: keyPath(at), message });

  const upstreams: Record<string, UpstreamGroup> = {};
  for (const [name, group] of Object.entries(raw.upstreams)) {
    upstreams[name] = { name, servers: group.servers.map((s) => new URL(s).origin), failTimeoutMs: group.fail_timeout, keepalive: group.keepalive, maxPending: group.max_pending };
  }

  const seenPaths = new Set<string>();
  const routes = raw.routes.map((r, i): Route | undefined => {
    if (seenPaths.has(r.path)) problem(['routes', i, 'path'], `another route already has the path "${r.path}"`);
    seenPaths.add(r.path);
    const action = routeAction(r, i, upstreams, configDir, problem);
    if (!action) return undefined;
    // Files are looked up by the decoded path, where %2F is a separator again.
    if (r.allow_encoded_slashes && action.kind !== 'proxy') problem(['routes', i, 'allow_encoded_slashes'], 'only a route with an upstream can allow encoded slashes');
    const defaults = settings.proxy;
    return {
      path: r.path,
      action,
      websocket: r.websocket,
      allowEncodedSlashes: r.allow_encoded_slashes,
      allowPathParameters: r.allow_path_parameters,
      maxBodySize: r.max_body_size ?? defaults.max_body_size,
      connectTimeoutMs: r.connect_timeout ?? defaults.connect_timeout,
      sendTimeoutMs: r.send_timeout ?? defaults.send_timeout,
      readTimeoutMs: r.read_timeout ?? defaults.read_timeout,
      bodyTimeoutMs: r.body_timeout ?? defaults.body_timeout,
      requestBuffering: r.request_buffering ?? defaults.request_buffering,
    };
  });

  const auth = raw.auth ? buildAuthSettings(raw.auth, configDir, problem) : undefined;
  const tls = siteTls(raw, configDir, problem);
  if (problems.length > before || !tls) return undefined;
  return {
    name: raw.server_names[0]!,
    file,
    serverNames: raw.server_names,
    tls,
    upstreams,
    routes: (routes as Route[]).sort((a, b) => b.path.length - a.path.length),
    denyPaths: raw.deny_paths.map((source) => new RegExp(source)),
    auth,
    hsts: raw.hsts && [`max-age=${Math.floor(raw.hsts.max_age / 1000)}`, ...(raw.hsts.include_subdomains ? ['includeSubDomains'] : []), ...(raw.hsts.preload ? ['preload'] : [])].join('; '),
  };
}

function siteTls(raw: SiteSettings, configDir: string, problem: (at: (string | number)[], message: string) => void): Site['tls'] | undefined {
  const { cert, key, acme } = raw.tls;
  if (acme) {
    if (cert !== undefined || key !== undefined) { problem(['tls', 'acme'], 'give either acme = true or cert and key, not both'); return undefined; }
    const wildcard = raw.server_names.findIndex((name) => name.startsWith('*.'));
    if (wildcard >= 0) {
      problem(['server_names', wildcard], `"${raw.server_names[wildcard]}" is a wildcard, and ACME HTTP-01 cannot prove wildcards: `
        + 'list the names one by one, or use cert and key files from a DNS-01 client');
      return undefined;
    }
    return { source: 'acme' };
  }
  if (cert === undefined || key === undefined) {
    problem(['tls', cert === undefined ? 'cert' : 'key'], 'missing: a site needs cert and key files, or acme = true');
    return undefined;
  }
  return readKeyPair(path.resolve(configDir, cert), path.resolve(configDir, key), (which, message) => problem(['tls', which], message));
}

function routeAction(r: RouteSettings, i: number, upstreams: Record<string, UpstreamGroup>, configDir: string,
  problem: (at: (string | number)[], message: string) => void): RouteAction | undefined {
  const chosen = (['upstream', 'root', 'status'] as const).filter((k) => r[k] !== undefined);
  if (chosen.length !== 1) {
    problem(['routes', i], `a route needs exactly one of upstream, root or status (found ${chosen.length === 0 ? 'none' : chosen.join(', ')})`);
    return undefined;
  }
  if (r.status !== undefined) return { kind: 'status', status: r.status };
  if (r.root !== undefined) return { kind: 'static', root: path.resolve(configDir, r.root), index: r.index };
  const target = r.upstream!;
  if (upstreams[target]) return { kind: 'proxy', upstream: target };
  if (!target.includes('://')) {
    problem(['routes', i, 'upstream'], `no [upstreams.${target}] in this site (or give a URL such as "http://127.0.0.1:8080")`);
    return undefined;
  }
  const parsed = globalUpstreamUrl(target);
  if (!parsed) {
    problem(['routes', i, 'upstream'], 'upstream URLs are http:// or https:// with a host and optional port, no path, query or credentials');
    return undefined;
  }
  upstreams[parsed] ??= { name: parsed, servers: [parsed], failTimeoutMs: 10_000, keepalive: 64, maxPending: DEFAULT_MAX_PENDING };
  return { kind: 'proxy', upstream: parsed };
}

function globalUpstreamUrl(text: string): string | undefined {
  try {
    const url = new URL(text);
    const clean = (url.protocol === 'http:' || url.protocol === 'https:') && (url.pathname === '/' || url.pathname === '') && !url.search && !url.hash && !url.username && !url.password;
    return clean ? url.origin : undefined;
  } catch { return undefined; }
}

function readKeyPair(certFile: string, keyFile: string, problem: (which: 'cert' | 'key', message: string) => void): FileTls | undefined {
  const read = (file: string, which: 'cert' | 'key') => {
    try { return fs.readFileSync(file, 'utf8'); } catch (error) {
      problem(which, `cannot read ${file}: ${(error as NodeJS.ErrnoException).code ?? String(error)}`);
      return undefined;
    }
  };
  const certPem = read(certFile, 'cert');
  const keyPem = read(keyFile, 'key');
  if (certPem === undefined || keyPem === undefined) return undefined;
  let leaf: crypto.X509Certificate;
  let key: crypto.KeyObject;
  try { leaf = new crypto.X509Certificate(certPem); } catch { problem('cert', `${certFile} is not a PEM certificate`); return undefined; }
  try { key = crypto.createPrivateKey(keyPem); } catch { problem('key', `${keyFile} is not a PEM private key`); return undefined; }
  if (!leaf.checkPrivateKey(key)) { problem('key', `${keyFile} does not belong to the certificate in ${certFile}`); return undefined; }
  return { source: 'files', certFile, keyFile, certPem, keyPem };
}

function stringAt(value: unknown, key: string): string | undefined {
  const found = value && typeof value === 'object' ? (value as Record<string, unknown>)[key] : undefined;
  return typeof found === 'string' ? found : undefined;
}

function keyPath(at: ReadonlyArray<string | number>): string {
  return at.reduce<string>((text, k) => (typeof k === 'number' ? `${text}[${k}]` : text ? `${text}.${k}` : k), '');
}

function deepFreeze<T>(value: T): T {
  if (value && typeof value === 'object' && !(value instanceof RegExp) && !ArrayBuffer.isView(value) && !Object.isFrozen(value)) {
    Object.freeze(value);
    for (const child of Object.values(value)) deepFreeze(child);
  }
  return value;
}

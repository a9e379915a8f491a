// Load and validate gatehouse.toml plus config/sites/*.toml. Every problem is collected with file, line and key,
// all are reported together, and nothing is returned unless the whole configuration is valid.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type { z } from 'zod';
import { acmeConfig } from './acme-config.ts';
import { UNSUPPORTED_AUTH_OPTIONS } from './auth-schema.ts';
import type { Config, Site } from './model.ts';
import { Problems, type KeyPath, type Report } from './problems.ts';
import { globalSchema, siteSchema } from './schema.ts';
import { resolveSecretReferences } from './secrets.ts';
import { buildSite } from './site.ts';
import { storeConfig } from './store-config.ts';
import { parseTomlSource, TomlSyntaxError, type TomlSource } from './toml-source.ts';

export const MAIN_FILE = 'gatehouse.toml';

export function loadConfig(dir: string, env: NodeJS.ProcessEnv = process.env): Config {
  const problems = new Problems();
  const configDir = path.resolve(dir);
  const mainFile = path.join(configDir, MAIN_FILE);
  const main = readValidated(mainFile, globalSchema, configDir, env, problems);
  // An invalid gatehouse.toml must not hide the problems of the site files: those are still read and checked,
  // against the defaults (and the sites_dir the file names, when that much is readable).
  const settings = main.value ?? globalSchema.parse({ sites_dir: stringAt(main.source?.value, 'sites_dir') });
  const mainProblem = problems.reporter(mainFile, main.source);

  const sitesDir = path.resolve(configDir, settings.sites_dir);
  let siteFiles: string[] = [];
  try {
    siteFiles = fs
      .readdirSync(sitesDir)
      .filter((f) => f.endsWith('.toml'))
      .sort()
      .map((f) => path.join(sitesDir, f));
  } catch (error) {
    mainProblem(['sites_dir'], `cannot read ${sitesDir}: ${(error as NodeJS.ErrnoException).code}`);
  }
  if (siteFiles.length === 0 && problems.count === 0)
    mainProblem(['sites_dir'], `no site files (*.toml) in ${sitesDir}`);

  const sites: Site[] = [];
  const owners = new Map<string, { file: string; line: number }>();
  const cookieDomains = new Map<string, { site: Site; file: string; line: number }>();
  for (const file of siteFiles) {
    const { value, source, reported } = readValidated(file, siteSchema, configDir, env, problems);
    if (!value || !source) continue;
    // Keys already reported were left out of the value: what the site builder finds there only repeats them.
    const problem = problems.reporter(file, source, reported);
    const site = buildSite(file, value, settings.proxy, configDir, problem);
    value.server_names.forEach((name, i) => {
      const line = source.lineOf(['server_names', i]);
      const owner = owners.get(name);
      if (owner) problem(['server_names', i], `"${name}" is already served by ${owner.file}:${owner.line}`);
      else owners.set(name, { file, line });
    });
    if (site) sites.push(site);
    const domain = site?.auth?.cookieDomain;
    if (site && domain) {
      const first = cookieDomains.get(domain);
      const differs = first && sharedLoginDifference(first.site, site);
      if (differs)
        problem(
          ['auth', 'cookie_domain'],
          `sites sharing cookie_domain "${domain}" share one login, but ${differs} differs from ${first.file}:${first.line}`,
        );
      else if (!first) cookieDomains.set(domain, { site, file, line: source.lineOf(['auth', 'cookie_domain']) });
    }
  }

  const defaultSite = settings.https.default_site;
  if (defaultSite && problems.count === 0 && !owners.has(defaultSite)) {
    mainProblem(['https', 'default_site'], `no site has the server name "${defaultSite}"`);
  }
  for (const table of ['https', 'http'] as const)
    if (settings[table].proxy_protocol && settings.proxy.trusted_proxies.length === 0)
      mainProblem(
        [table, 'proxy_protocol'],
        'list the balancers that send the PROXY protocol header in [proxy] trusted_proxies; connections from anyone else are refused',
      );
  const acme = acmeConfig(settings.acme, configDir, mainProblem);
  const store = storeConfig(settings.store, configDir, mainProblem);
  const acmeSites = sites.filter((site) => site.tls.source === 'acme');
  if (acmeSites.length > 0 && !acme.termsOfServiceAgreed) {
    mainProblem(
      ['acme', 'terms_of_service_agreed'],
      `${acmeSites[0]!.file} uses tls.acme: set terms_of_service_agreed = true to accept the CA's terms (${acme.directoryUrl})`,
    );
  }
  if (acmeSites.length > 0 && store.backend === 'redis' && !store.encryptionKey) {
    mainProblem(
      ['store', 'encryption_key'],
      `${acmeSites[0]!.file} uses tls.acme and backend = "redis" keeps its private keys in Redis: set encryption_key = "\${file:secrets/store-key}" (32 bytes: openssl rand -base64 32), the same on every instance`,
    );
  }
  problems.throwIfAny();

  const { https, log, proxy, lifecycle, metrics } = settings;
  const workers = settings.workers === 'auto' ? os.availableParallelism() : settings.workers;
  // HTTP-01 needs a plain-HTTP listener: without an [http] listen, ACME sites get one on [acme] http_port.
  const http =
    acmeSites.length > 0 && settings.http.listen.length === 0
      ? { ...settings.http, listen: [{ host: '0.0.0.0', port: acme.httpPort }] }
      : settings.http;
  const session = { ...settings.session, file: path.resolve(configDir, settings.session.path) };
  return deepFreeze({
    dir: configDir,
    file: mainFile,
    https,
    http,
    log,
    proxy,
    lifecycle,
    workers,
    acme,
    session,
    store,
    metrics,
    sites,
  });
}

/**
 * Reads, resolves and validates one file, reporting every problem. When some keys are wrong, those keys are pruned
 * and the rest validated again, so the checks that need a whole value (files, cross-file, routes) still run and
 * everything is reported in one go; `reported` names the pruned keys, whose follow-on problems are not repeated.
 * No value when the file cannot be parsed or is still invalid once pruned.
 */
function readValidated<S extends z.ZodType>(
  file: string,
  schema: S,
  configDir: string,
  env: NodeJS.ProcessEnv,
  problems: Problems,
): { value?: z.output<S>; source?: TomlSource; reported: KeyPath[] } {
  let source: TomlSource;
  try {
    source = parseTomlSource(fs.readFileSync(file, 'utf8'));
  } catch (error) {
    if (error instanceof TomlSyntaxError) problems.atLine(file, error.line, `TOML syntax: ${error.message}`);
    else problems.atLine(file, 1, `cannot read: ${(error as NodeJS.ErrnoException).code ?? String(error)}`);
    return { reported: [] };
  }
  const wrong: KeyPath[] = [];
  const report = problems.reporter(file, source);
  const problem: Report = (at, message) => {
    report(at, message);
    wrong.push(at);
  };
  const secretProblems: { path: KeyPath; message: string }[] = [];
  const resolved = resolveSecretReferences(source.value, configDir, env, secretProblems);
  for (const p of secretProblems) problem(p.path, p.message);

  const result = schema.safeParse(resolved);
  if (!result.success) {
    for (const issue of result.error.issues) {
      const at = issue.path.map((k) => (typeof k === 'symbol' ? String(k) : k));
      if (issue.code === 'unrecognized_keys') {
        for (const key of issue.keys) {
          const why = at.length === 1 && at[0] === 'auth' ? UNSUPPORTED_AUTH_OPTIONS[key] : undefined;
          problem([...at, key], why ? `oauth2-proxy option not supported by Gatehouse: ${why}` : 'unknown key');
        }
      } else {
        problem(at, issue.message);
      }
    }
  }
  if (wrong.length === 0 && result.success) return { value: result.data, source, reported: wrong };
  // A whole file, or an item of a list, cannot be left out without shifting what the other problems point at.
  if (wrong.some((at) => at.length === 0 || typeof at.at(-1) === 'number')) return { source, reported: wrong };
  const pruned = schema.safeParse(withoutKeys(resolved, wrong));
  return pruned.success ? { value: pruned.data, source, reported: wrong } : { source, reported: wrong };
}

/** A copy of a parsed TOML value without the keys at the given paths. */
function withoutKeys(value: unknown, paths: KeyPath[]): unknown {
  const copy = structuredClone(value);
  for (const at of paths) {
    let parent: unknown = copy;
    for (const key of at.slice(0, -1))
      parent = parent && typeof parent === 'object' ? (parent as Record<string | number, unknown>)[key] : undefined;
    if (parent && typeof parent === 'object') delete (parent as Record<string | number, unknown>)[at.at(-1)!];
  }
  return copy;
}

/** What sites sharing a session cookie must agree on: the provider and client that made the session, and the cookie. */
function sharedLoginDifference(a: Site, b: Site): string | undefined {
  const x = a.auth!;
  const y = b.auth!;
  if (x.provider !== y.provider) return 'provider';
  if (x.issuer !== y.issuer) return 'oidc_issuer_url';
  if (x.clientId !== y.clientId) return 'client_id';
  if (x.clientSecret !== y.clientSecret) return 'client_secret';
  if (!x.secret.equals(y.secret)) return 'cookie_secret';
  if (x.cookieName !== y.cookieName) return 'cookie_name';
  return undefined;
}

function stringAt(value: unknown, key: string): string | undefined {
  const found = value && typeof value === 'object' ? (value as Record<string, unknown>)[key] : undefined;
  return typeof found === 'string' ? found : undefined;
}

function deepFreeze<T>(value: T): T {
  if (
    value &&
    typeof value === 'object' &&
    !(value instanceof RegExp) &&
    !ArrayBuffer.isView(value) &&
    !Object.isFrozen(value)
  ) {
    Object.freeze(value);
    for (const child of Object.values(value)) deepFreeze(child);
  }
  return value;
}

// One site file's validated settings turned into the Site the server uses: upstream groups, routes (longest path
// first), the certificate and key read and checked (or ACME), [auth] and HSTS. Problems go to the caller's reporter.
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { ipRules, rateLimit, redirectAction, requestHeaders, responseHeaders } from './access-knobs.ts';
import { buildAuthSettings } from './auth-settings.ts';
import type { FileTls, Route, RouteAction, Site, UpstreamGroup } from './model.ts';
import type { Report } from './problems.ts';
import { DEFAULT_MAX_PENDING, type GlobalSettings, type RouteSettings, type SiteSettings } from './schema.ts';

/** The site, or undefined when it has a problem (every one reported). */
export function buildSite(
  file: string,
  raw: SiteSettings,
  defaults: GlobalSettings['proxy'],
  configDir: string,
  report: Report,
): Site | undefined {
  let found = false;
  const problem: Report = (at, message) => {
    found = true;
    report(at, message);
  };

  const upstreams: Record<string, UpstreamGroup> = {};
  for (const [name, group] of Object.entries(raw.upstreams)) {
    upstreams[name] = {
      name,
      servers: group.servers.map((s) => new URL(s).origin),
      failTimeoutMs: group.fail_timeout,
      keepalive: group.keepalive,
      maxPending: group.max_pending,
      caPem: group.ca === undefined ? undefined : readCa(path.resolve(configDir, group.ca), name, problem),
      healthCheck: group.health_check && {
        path: group.health_check.path,
        intervalMs: group.health_check.interval,
        timeoutMs: group.health_check.timeout,
        healthy: group.health_check.healthy,
        unhealthy: group.health_check.unhealthy,
        status: group.health_check.status.endsWith('xx')
          ? { min: Number(group.health_check.status[0]) * 100, max: Number(group.health_check.status[0]) * 100 + 99 }
          : { min: Number(group.health_check.status), max: Number(group.health_check.status) },
      },
    };
  }

  const owned = { authorization: raw.auth?.pass_authorization_header === true };
  const siteResponseHeaders = responseHeaders(raw.response_headers, ['response_headers'], problem);
  const siteRequestHeaders = requestHeaders(raw.request_headers, ['request_headers'], problem, owned);
  const siteIpRules = ipRules(raw.ip_rules, ['ip_rules'], problem);
  const siteRateLimit = rateLimit(raw.rate_limit);

  const seenPaths = new Set<string>();
  const routes = raw.routes.map((r, i): Route | undefined => {
    if (seenPaths.has(r.path)) problem(['routes', i, 'path'], `another route already has the path "${r.path}"`);
    seenPaths.add(r.path);
    const action = routeAction(r, i, upstreams, configDir, problem);
    if (!action) return undefined;
    // Files are looked up by the decoded path, where %2F is a separator again.
    if (r.allow_encoded_slashes && action.kind !== 'proxy')
      problem(['routes', i, 'allow_encoded_slashes'], 'only a route with an upstream can allow encoded slashes');
    if (r.rewrite_prefix !== undefined && action.kind !== 'proxy')
      problem(['routes', i, 'rewrite_prefix'], 'only a route with an upstream has a path to rewrite');
    const at = ['routes', i];
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
      responseHeaders: responseHeaders(r.response_headers, [...at, 'response_headers'], problem, siteResponseHeaders),
      requestHeaders: requestHeaders(r.request_headers, [...at, 'request_headers'], problem, owned, siteRequestHeaders),
      ipRules: ipRules(r.ip_rules, [...at, 'ip_rules'], problem) ?? siteIpRules,
      rateLimit: rateLimit(r.rate_limit) ?? siteRateLimit,
      rewritePrefix: r.rewrite_prefix,
    };
  });

  const auth = raw.auth ? buildAuthSettings(raw.auth, configDir, problem) : undefined;
  const domain = auth?.cookieDomain;
  const outside = domain ? raw.server_names.find((n) => n !== domain && !n.endsWith(`.${domain}`)) : undefined;
  if (outside)
    problem(
      ['auth', 'cookie_domain'],
      `"${outside}" is not under cookie_domain "${domain}": a browser would not send it the session cookie`,
    );
  const tls = siteTls(raw, configDir, problem);
  if (found || !tls) return undefined;
  return {
    name: raw.server_names[0]!,
    file,
    serverNames: raw.server_names,
    tls,
    upstreams,
    routes: (routes as Route[]).sort((a, b) => b.path.length - a.path.length),
    denyPaths: raw.deny_paths.map((source) => new RegExp(source)),
    auth,
    hsts:
      raw.hsts &&
      [
        `max-age=${Math.floor(raw.hsts.max_age / 1000)}`,
        ...(raw.hsts.include_subdomains ? ['includeSubDomains'] : []),
        ...(raw.hsts.preload ? ['preload'] : []),
      ].join('; '),
    responseHeaders: siteResponseHeaders,
    ipRules: siteIpRules,
    rateLimit: siteRateLimit,
  };
}

function siteTls(raw: SiteSettings, configDir: string, problem: Report): Site['tls'] | undefined {
  const { cert, key, acme } = raw.tls;
  if (acme) {
    if (cert !== undefined || key !== undefined) {
      problem(['tls', 'acme'], 'give either acme = true or cert and key, not both');
      return undefined;
    }
    const wildcard = raw.server_names.findIndex((name) => name.startsWith('*.'));
    if (wildcard >= 0) {
      problem(
        ['server_names', wildcard],
        `"${raw.server_names[wildcard]}" is a wildcard, and ACME HTTP-01 cannot prove wildcards: ` +
          'list the names one by one, or use cert and key files from a DNS-01 client',
      );
      return undefined;
    }
    return { source: 'acme' };
  }
  if (cert === undefined || key === undefined) {
    problem(['tls', cert === undefined ? 'cert' : 'key'], 'missing: a site needs cert and key files, or acme = true');
    return undefined;
  }
  return readKeyPair(path.resolve(configDir, cert), path.resolve(configDir, key), (which, message) =>
    problem(['tls', which], message),
  );
}

function routeAction(
  r: RouteSettings,
  i: number,
  upstreams: Record<string, UpstreamGroup>,
  configDir: string,
  problem: Report,
): RouteAction | undefined {
  // With redirect, status is the redirect's status.
  const chosen = (['upstream', 'root', 'redirect', 'status'] as const).filter(
    (k) => r[k] !== undefined && !(k === 'status' && r.redirect !== undefined),
  );
  if (chosen.length !== 1) {
    problem(
      ['routes', i],
      `a route needs exactly one of upstream, root, redirect or status (found ${chosen.length === 0 ? 'none' : chosen.join(', ')})`,
    );
    return undefined;
  }
  if (r.redirect !== undefined) return redirectAction(r.redirect, r.status, ['routes', i], problem);
  if (r.status !== undefined) return { kind: 'status', status: r.status };
  if (r.root !== undefined) return { kind: 'static', root: path.resolve(configDir, r.root), index: r.index };
  const target = r.upstream!;
  if (upstreams[target]) return { kind: 'proxy', upstream: target };
  if (!target.includes('://')) {
    problem(
      ['routes', i, 'upstream'],
      `no [upstreams.${target}] in this site (or give a URL such as "http://127.0.0.1:8080")`,
    );
    return undefined;
  }
  const parsed = globalUpstreamUrl(target);
  if (!parsed) {
    problem(
      ['routes', i, 'upstream'],
      'upstream URLs are http:// or https:// with a host and optional port, no path, query or credentials',
    );
    return undefined;
  }
  upstreams[parsed] ??= {
    name: parsed,
    servers: [parsed],
    failTimeoutMs: 10_000,
    keepalive: 64,
    maxPending: DEFAULT_MAX_PENDING,
  };
  return { kind: 'proxy', upstream: parsed };
}

function globalUpstreamUrl(text: string): string | undefined {
  try {
    const url = new URL(text);
    const clean =
      (url.protocol === 'http:' || url.protocol === 'https:') &&
      (url.pathname === '/' || url.pathname === '') &&
      !url.search &&
      !url.hash &&
      !url.username &&
      !url.password;
    return clean ? url.origin : undefined;
  } catch {
    return undefined;
  }
}

/** The CA bundle of an upstream group: a readable file with at least one PEM certificate, else a problem. */
function readCa(file: string, group: string, problem: Report): string | undefined {
  let pem: string;
  try {
    pem = fs.readFileSync(file, 'utf8');
  } catch (error) {
    problem(
      ['upstreams', group, 'ca'],
      `cannot read ${file}: ${(error as NodeJS.ErrnoException).code ?? String(error)}`,
    );
    return undefined;
  }
  try {
    new crypto.X509Certificate(pem);
  } catch {
    problem(['upstreams', group, 'ca'], `${file} is not a PEM certificate`);
    return undefined;
  }
  return pem;
}

function readKeyPair(
  certFile: string,
  keyFile: string,
  problem: (which: 'cert' | 'key', message: string) => void,
): FileTls | undefined {
  const read = (file: string, which: 'cert' | 'key') => {
    try {
      return fs.readFileSync(file, 'utf8');
    } catch (error) {
      problem(which, `cannot read ${file}: ${(error as NodeJS.ErrnoException).code ?? String(error)}`);
      return undefined;
    }
  };
  const certPem = read(certFile, 'cert');
  const keyPem = read(keyFile, 'key');
  if (certPem === undefined || keyPem === undefined) return undefined;
  let leaf: crypto.X509Certificate;
  let key: crypto.KeyObject;
  try {
    leaf = new crypto.X509Certificate(certPem);
  } catch {
    problem('cert', `${certFile} is not a PEM certificate`);
    return undefined;
  }
  try {
    key = crypto.createPrivateKey(keyPem);
  } catch {
    problem('key', `${keyFile} is not a PEM private key`);
    return undefined;
  }
  if (!leaf.checkPrivateKey(key)) {
    problem('key', `${keyFile} does not belong to the certificate in ${certFile}`);
    return undefined;
  }
  return { source: 'files', certFile, keyFile, certPem, keyPem };
}

// The first steps every request and upgrade take: find the site by Host (which must agree with SNI),
// normalize the path, apply deny rules, pick the route by longest prefix.
import type { Route } from '../config/model.ts';
import type { Runtime, SiteRuntime } from './runtime.ts';
import { normalizeHost } from '../tls/name-index.ts';
import type { ErrorCode } from '../base/errors.ts';
import { normalizePath, refusalOnRoute, type RequestPath } from './normalize-path.ts';
import { tlsServername } from './request-context.ts';
import type { AnyRequest } from '../base/types.ts';

export type Target =
  /** pathname: what rules matched (path.match); path.normalized + path.query is what the upstream receives. */
  | { site: SiteRuntime; route: Route; pathname: string; path: RequestPath; host: string }
  /** /oauth2/* of a site with [auth]: answered by the site's auth routes, before deny rules and routes. */
  | { site: SiteRuntime; oauth2: true; pathname: string; host: string }
  | { error: ErrorCode; site?: SiteRuntime; cause?: Error };

export function resolveTarget(runtime: Runtime, req: AnyRequest): Target {
  const host = requestHost(req);
  if (!host) return { error: 'ERR_HTTP_BAD_REQUEST' };
  // Host must name the server the TLS handshake was for; otherwise one site's certificate (and its auth policy)
  // would answer for another (RFC 9110 §7.4, 421 Misdirected Request). A client without SNI was given the default
  // site's certificate, so only the default site answers it.
  const servername = tlsServername(req);
  if (servername !== undefined && servername !== host) return { error: 'ERR_TLS_MISDIRECTED' };
  const site = runtime.sites.get(host) ?? runtime.defaultSite;
  if (!site) return { error: 'ERR_SITE_UNKNOWN' };
  if (servername === undefined && site !== runtime.defaultSite) return { error: 'ERR_TLS_MISDIRECTED' };
  if (req.method === 'TRACE' || req.method === 'TRACK') return { error: 'ERR_HTTP_TRACE', site };

  const path = normalizePath(req.url ?? '');
  if ('refused' in path) return { error: 'ERR_PATH_REFUSED', site, cause: new Error(path.refused) };
  const pathname = path.match;
  const oauth2 = site.auth !== undefined && pathname.startsWith('/oauth2/');
  const route = oauth2 ? undefined : routeFor(site.config.routes, pathname);
  // %2F, %5C and ";" only where the route allows them (never on /oauth2/*), before any other rule.
  const refusal = refusalOnRoute(path, route);
  if (refusal) return { error: 'ERR_PATH_REFUSED', site, cause: new Error(refusal) };
  if (oauth2) return { site, oauth2: true, pathname, host };
  for (const rule of site.config.denyPaths) if (rule.test(pathname)) return { error: 'ERR_ROUTE_DENIED', site };
  if (!route) return { error: 'ERR_ROUTE_NOT_FOUND', site };
  return { site, route, pathname, path, host };
}

/** The first route whose path prefixes the request's ("/app" is the route "/app/" too); no closure per request. */
function routeFor(routes: readonly Route[], pathname: string): Route | undefined {
  for (const route of routes) if (pathname.startsWith(route.path) || `${pathname}/` === route.path) return route;
  return undefined;
}

/**
 * The host a request names: HTTP/2's :authority, else Host. Undefined (400) when it is missing or malformed, when
 * there is more than one Host line (RFC 9112 §3.2; Node keeps only the first), or when an HTTP/2 request's Host
 * names another host than its :authority (RFC 9113 §8.3.1).
 */
function requestHost(req: AnyRequest): string | undefined {
  let hostLines = 0;
  for (let i = 0; i < req.rawHeaders.length; i += 2) {
    const name = req.rawHeaders[i]!;
    if (name.length === 4 && name.toLowerCase() === 'host') hostLines++;
  }
  if (hostLines > 1) return undefined;
  const host = normalizeHost(req.headers.host);
  const authority = req.headers[':authority'];
  if (authority === undefined) return host;
  const fromAuthority = normalizeHost(Array.isArray(authority) ? authority[0] : authority);
  return hostLines === 0 || host === fromAuthority ? fromAuthority : undefined;
}

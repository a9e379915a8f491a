// The headers an upstream receives: the client's, minus hop-by-hop headers (RFC 9110 §7.6.1), minus anything a
// client could use to impersonate a proxy or a user, plus X-Real-IP / X-Forwarded-* that we vouch for.
import type { IncomingHttpHeaders } from 'node:http';
import { HOP_BY_HOP } from '../base/hop-by-hop.ts';
import type { RequestHeaderRule, ResponseHeaders } from '../config/model.ts';
import { renderTemplate, type TemplateValues } from '../config/templates.ts';
import { withoutCookies } from '../session/cookies.ts';

/**
 * Headers only Gatehouse may set. An incoming header whose name, lower-cased with "_" and "." read as "-",
 * is one of these is dropped: some upstream frameworks treat X_Forwarded_For or x.auth.request.user as the
 * real thing (oauth2-proxy GHSA-vjrc-mh2v-45x6).
 */
export const OWNED_HEADERS = new Set([
  'x-real-ip',
  'x-forwarded-for',
  'x-forwarded-proto',
  'x-forwarded-host',
  'x-forwarded-port',
  'x-forwarded-prefix',
  'x-forwarded-server',
  'x-forwarded-ssl',
  'x-forwarded-scheme',
  'x-original-url',
  'x-original-uri',
  'x-rewrite-url',
  'forwarded',
  'x-request-id',
  // Identity headers (oauth2-proxy's names): set only from a verified session, on sites with [auth].
  'x-auth-request-user',
  'x-auth-request-email',
  'x-auth-request-preferred-username',
  'x-auth-request-groups',
  'x-auth-request-access-token',
  'x-auth-request-redirect',
  'x-forwarded-user',
  'x-forwarded-email',
  'x-forwarded-preferred-username',
  'x-forwarded-groups',
  'x-forwarded-access-token',
]);

/** Headers whose value we keep from a trusted proxy, and otherwise replace. */
const FORWARDING = new Set([
  'x-forwarded-for',
  'x-forwarded-proto',
  'x-forwarded-host',
  'x-forwarded-port',
  'x-forwarded-prefix',
  'forwarded',
]);

export function normalizedHeaderName(name: string): string {
  const lower = name.toLowerCase();
  // Most names have neither: no regular expression run for them (this runs for every header of every request).
  return lower.includes('_') || lower.includes('.') ? lower.replace(/[_.]/g, '-') : lower;
}

export interface ForwardingFacts {
  peerAddress: string;
  clientAddress: string;
  peerIsTrusted: boolean;
  proto: 'https' | 'http';
  host: string;
  requestId: string;
}

/** What a site with [auth] keeps from its upstreams besides OWNED_HEADERS. */
export interface SiteOwned {
  /** Extra names (already normalized) that only Gatehouse may set, such as Authorization when it sets its own. */
  headers: ReadonlySet<string>;
  /** Gatehouse's cookies: every cookie whose name starts with this is left out of the Cookie header. */
  cookiePrefix: string;
}

/**
 * Builds the upstream request's headers. Names arrive lower-cased from Node; HTTP/2 pseudo-headers are dropped. Each
 * header the upstream must not get is left out as the object is built: a `delete` would turn it into a slow
 * dictionary for every later step (identity headers, request_headers, the serialized head).
 */
export function upstreamRequestHeaders(
  incoming: IncomingHttpHeaders,
  facts: ForwardingFacts,
  site?: SiteOwned,
): Record<string, string | string[]> {
  const named = connectionNamedHeaders(incoming.connection);
  const out: Record<string, string | string[]> = {};
  for (const name in incoming) {
    const value = incoming[name];
    if (value === undefined || name.charCodeAt(0) === 58 /* ':' */ || HOP_BY_HOP.has(name) || named.has(name)) continue;
    const normalized = normalizedHeaderName(name);
    if (named.has(normalized)) continue;
    if (OWNED_HEADERS.has(normalized) || site?.headers.has(normalized)) {
      if (facts.peerIsTrusted && FORWARDING.has(name)) out[name] = value;
      continue;
    }
    if (name === 'cookie' && site) {
      const kept = withoutCookies(value, site.cookiePrefix);
      if (kept !== undefined) out.cookie = kept;
      continue;
    }
    out[name] = value;
  }
  // WebSocket and h2c upgrades keep their Upgrade + Connection pair; everything else is hop-by-hop.
  if (incoming.upgrade !== undefined && /\bupgrade\b/i.test(String(incoming.connection))) {
    out.connection = 'upgrade';
    out.upgrade = incoming.upgrade;
  }

  out.host = facts.host;
  out['x-real-ip'] = facts.clientAddress;
  const priorFor = facts.peerIsTrusted ? incoming['x-forwarded-for'] : undefined;
  out['x-forwarded-for'] = priorFor
    ? `${Array.isArray(priorFor) ? priorFor.join(', ') : priorFor}, ${facts.peerAddress}`
    : facts.peerAddress;
  if (!(facts.peerIsTrusted && incoming['x-forwarded-proto'])) out['x-forwarded-proto'] = facts.proto;
  if (!(facts.peerIsTrusted && incoming['x-forwarded-host'])) out['x-forwarded-host'] = facts.host;
  out['x-request-id'] = facts.requestId;
  return out;
}

/**
 * request_headers (nginx proxy_set_header) over the headers Gatehouse built: each replaces the header of that name;
 * one whose value comes out empty removes it, as in nginx. Names that only Gatehouse may set were refused at load.
 */
export function applyRequestHeaders(
  headers: Record<string, string | string[]>,
  rules: readonly RequestHeaderRule[],
  values: TemplateValues,
): void {
  for (const rule of rules) {
    const value = renderTemplate(rule.value, values);
    if (value === '') delete headers[rule.name];
    else headers[rule.name] = value;
  }
}

/**
 * Fields HTTP/2 allows once per response (node:http2 throws ERR_HTTP2_HEADER_SINGLE_VALUE on a second one). An
 * HTTP/1.1 upstream may repeat them; for an HTTP/2 client the first wins, as node:http keeps the first of such a
 * field when it parses one (IncomingMessage._addHeaderLine).
 */
const SINGLE_VALUE = new Set([
  'access-control-allow-credentials',
  'age',
  'content-encoding',
  'content-language',
  'content-length',
  'content-location',
  'content-md5',
  'content-range',
  'content-type',
  'date',
  'etag',
  'expires',
  'last-modified',
  'location',
  'retry-after',
  'tk',
  'x-content-type-options',
]);

/**
 * The upstream response's headers minus hop-by-hop ones, fit for HTTP/1.1 and HTTP/2 clients alike: Node's flat raw
 * list [name, value, ...] in, a flat list out, which node:http and node:http2 both take in writeHead (no object built
 * per response). For an HTTP/2 client a repeated single-value field keeps its first value. The route's
 * response_headers go over them (a configured value replaces the upstream's; "" removes it).
 */
export function clientResponseHeaderList(raw: string[], http2 = false, configured: ResponseHeaders = {}): string[] {
  let named: Set<string> = EMPTY;
  for (let i = 0; i < raw.length; i += 2)
    if (raw[i]!.length === 10 && raw[i]!.toLowerCase() === 'connection') {
      const listed = connectionNamedHeaders(raw[i + 1]);
      if (listed === EMPTY) continue;
      if (named === EMPTY) named = new Set();
      for (const name of listed) named.add(name);
    }
  const replaced = configuredNames(configured);
  const single = http2 ? new Set<string>() : undefined;
  const out: string[] = [];
  for (let i = 0; i < raw.length; i += 2) {
    const name = raw[i]!.toLowerCase();
    if (HOP_BY_HOP.has(name) || named.has(name) || replaced.has(name)) continue;
    if (single !== undefined && SINGLE_VALUE.has(name)) {
      if (single.has(name)) continue;
      single.add(name);
    }
    out.push(raw[i]!, raw[i + 1]!);
  }
  for (const name in configured) if (configured[name] !== '') out.push(name, configured[name]!);
  return out;
}

/** The names of a route's response_headers, as a set made once per configuration (a lookup per response header). */
const namesOf = new WeakMap<ResponseHeaders, ReadonlySet<string>>();
function configuredNames(configured: ResponseHeaders): ReadonlySet<string> {
  let names = namesOf.get(configured);
  if (names === undefined) namesOf.set(configured, (names = new Set(Object.keys(configured))));
  return names;
}

/** Lower-cased names listed in a Connection header ("Connection: close, X-Foo" makes X-Foo hop-by-hop). */
function connectionNamedHeaders(connection: string | string[] | undefined): ReadonlySet<string> {
  if (!connection) return EMPTY;
  // What almost every upstream sends names nothing beyond the hop-by-hop headers: no set per response.
  if (connection === 'keep-alive' || connection === 'Keep-Alive') return EMPTY;
  const names = new Set<string>();
  for (const part of (Array.isArray(connection) ? connection.join(',') : connection).split(',')) {
    const name = part.trim().toLowerCase();
    if (name) {
      names.add(name);
      names.add(normalizedHeaderName(name));
    }
  }
  return names;
}
const EMPTY: Set<string> = new Set();

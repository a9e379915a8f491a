// The request path, read once. What every rule matches (routes, deny_paths, skip_auth_routes, api_routes, /oauth2/*)
// and what the upstream receives must be the same resource, or a rule can be walked around: "/secret/..%2fpublic"
// matched ^/public while Express and Hono served /secret. So, as Envoy does at the edge (normalize_path, merge_slashes,
// path_with_escaped_slashes_action: https://www.envoyproxy.io/docs/envoy/latest/configuration/best_practices/edge):
//   - refuse what has no single reading: bytes outside printable ASCII, "\" or "#" in the path, invalid
//     percent-encoding, escapes that are not UTF-8 (overlong "%c0%ae" included) or that encode a control character;
//   - normalize (RFC 3986 §6.2.2): decode escapes of unreserved characters, upper-case the others, percent-encode
//     what a path may not hold raw, merge repeated slashes, resolve dot segments (§5.2.4);
//   - forward exactly that path (plus the query as sent), and match its percent-decoded form: what the upstream
//     decodes it to. %2F and %5C are never separators: they stay as they are in the matched form, and ";" is data.
// Encoded slashes and ";" are flagged here and refused by the caller unless the route opts in (refusalOnRoute).
export interface RequestPath {
  /** The normalized path, still percent-encoded: what the upstream (or the file lookup) receives. */
  normalized: string;
  /** "?…" as the client sent it, or "". */
  query: string;
  /** The normalized path percent-decoded (%2F and %5C left as they are): what rules match. */
  match: string;
  encodedSlash: boolean;
  parameters: boolean;
}

const UNRESERVED = /^[A-Za-z0-9._~-]$/;
/** Printable ASCII that a path may not hold raw (RFC 3986 §3.3); clients send some of it ("|", "[", "^") unencoded. */
const NOT_IN_PATH = /["<>[\]^`{|}]/g;
/** A path with nothing to normalize, which is nearly every path: no escapes, no dot or empty segments, nothing to encode. */
const PLAIN = /^(?:\/(?!\.{1,2}(?:\/|$))[\w.~!$&'()*+,;=:@-]+)*\/?$/;

export function normalizePath(target: string): RequestPath | { refused: string } {
  if (!target.startsWith('/')) return { refused: 'the request target is not a path' };
  // llhttp refuses these in HTTP/1.1 already; an HTTP/2 :path gets the same rule.
  if (/[^\x21-\x7e]/.test(target))
    return { refused: 'the request target holds a space, a control character or a byte outside ASCII' };
  const queryAt = target.indexOf('?');
  const raw = queryAt < 0 ? target : target.slice(0, queryAt);
  const query = queryAt < 0 ? '' : target.slice(queryAt);
  if (PLAIN.test(raw))
    return { normalized: raw, query, match: raw, encodedSlash: false, parameters: raw.includes(';') };

  // IIS and some Java servers take "\" for "/"; a client never sends a fragment, and frameworks disagree on one.
  if (raw.includes('\\')) return { refused: 'a backslash in the path' };
  if (raw.includes('#')) return { refused: 'a "#" in the path' };
  if (/%(?![0-9A-Fa-f]{2})/.test(raw)) return { refused: 'invalid percent-encoding in the path' };
  const canonical = raw
    .replace(/%[0-9A-Fa-f]{2}/g, (escape) => {
      const char = String.fromCharCode(parseInt(escape.slice(1), 16));
      return UNRESERVED.test(char) ? char : escape.toUpperCase();
    })
    .replace(NOT_IN_PATH, (char) => `%${char.charCodeAt(0).toString(16).toUpperCase()}`);
  // Checked on every segment, before ".." could remove one: "/a/%00/../b" is refused, not quietly "/a/b" (so are
  // %2F, %5C and ";" below).
  let decoded: string;
  try {
    // decodeURIComponent refuses bytes that are not UTF-8, overlong forms and surrogates included (ECMA-262 Decode).
    decoded = decodeURIComponent(canonical);
  } catch {
    return { refused: 'percent-encoded bytes in the path that are not UTF-8' };
  }
  if (/[\0-\x1f\x7f]/.test(decoded)) return { refused: 'an encoded control character in the path' };

  // Repeated slashes are merged first (as nginx does), then dot segments resolved; ".." at the root stays at the root.
  const input = canonical.split('/');
  const segments: string[] = [];
  for (const segment of input) {
    if (segment === '..') segments.pop();
    else if (segment !== '.' && segment !== '') segments.push(segment);
  }
  const last = input.at(-1);
  const normalized = `/${segments.join('/')}${segments.length > 0 && (last === '' || last === '.' || last === '..') ? '/' : ''}`;
  // Escapes never span a "/", so the segments left decode as they did above.
  const match = decodeURIComponent(normalized.replace(/%(2F|5C)/g, '%25$1'));
  return { normalized, query, match, encodedSlash: /%(?:2F|5C)/.test(canonical), parameters: canonical.includes(';') };
}

/**
 * Why this route refuses the path, if it does. %2F and %5C: some upstreams decode them into separators (and then
 * resolve "..") after we matched, so they are refused unless the route says its upstream takes them as data.
 * ";": servlet containers (Tomcat, Jetty, Spring) drop ";…" from each segment before routing, so "/public/..;/secret"
 * is /secret to them and "/;x/secret" too; refused unless the route says its upstream takes ";" as data.
 */
export function refusalOnRoute(
  path: RequestPath,
  route: { allowEncodedSlashes: boolean; allowPathParameters: boolean } | undefined,
): string | undefined {
  if (path.encodedSlash && !route?.allowEncodedSlashes)
    return 'an encoded slash (%2F) or backslash (%5C) in the path, which this route does not allow (allow_encoded_slashes)';
  if (path.parameters && !route?.allowPathParameters)
    return 'a ";" in the path, which this route does not allow (allow_path_parameters)';
  return undefined;
}

// Where a login or logout may send the browser afterwards (rd). Parsed with the WHATWG URL parser, never by string
// prefix; only https URLs of this site or of whitelist_domains (compared label-wise) pass. Each rejected shape is
// a past open-redirect advisory of an auth proxy (oauth2-proxy CVE-2020-5233, CVE-2020-11053, CVE-2021-21291).

/** The absolute URL to return to, or undefined when rd is not acceptable. origin = "https://host[:port]" of the request. */
export function validateReturnUrl(
  rd: string,
  origin: string,
  siteNames: readonly string[],
  whitelist: readonly string[],
): string | undefined {
  if (rd.length === 0 || rd.length > 2048) return undefined;
  let decoded: string;
  try {
    decoded = decodeURIComponent(rd);
  } catch {
    return undefined;
  }
  // Whitespace, controls and backslashes are never part of a return URL we produce; browsers "fix" them into hosts.
  for (const text of [rd, decoded])
    if (/[\s\p{Cc}\\]/u.test(text) || /[\u00a0\u2000-\u200f\u2028\u2029\ufeff]/u.test(text)) return undefined;
  let url: URL;
  if (rd.startsWith('/')) {
    // "//evil.com" and "/\evil.com" are protocol-relative to a browser.
    if (rd.startsWith('//') || decoded.startsWith('//')) return undefined;
    url = new URL(origin + rd);
  } else {
    try {
      url = new URL(rd);
    } catch {
      return undefined;
    }
  }
  if (url.protocol !== 'https:' || url.username !== '' || url.password !== '') return undefined;
  const self = new URL(origin);
  if (url.host === self.host) return url.href;
  if (siteNames.includes(url.hostname) && url.port === self.port) return url.href;
  return whitelist.some((rule) => hostAllowed(url, rule)) ? url.href : undefined;
}

/** ".example.com" = example.com and every subdomain; "example.com" = that host; ":port" or ":*" pins the port. */
function hostAllowed(url: URL, rule: string): boolean {
  const colon = rule.lastIndexOf(':');
  const [domain, port] = colon > 0 && !rule.endsWith(']') ? [rule.slice(0, colon), rule.slice(colon + 1)] : [rule, ''];
  if (port !== '*' && url.port !== port) return false;
  const host = url.hostname;
  if (domain.startsWith('.') || domain.startsWith('*.')) {
    const base = domain.replace(/^\*?\./, '');
    const hostLabels = host.split('.');
    const baseLabels = base.split('.');
    // Label-wise: "evilexample.com" never matches ".example.com".
    return hostLabels.length >= baseLabels.length && hostLabels.slice(-baseLabels.length).join('.') === base;
  }
  return host === domain;
}

/** "https://host[:port]" of a request whose Host was already matched against the TLS server name (host = normalized). */
export function requestOrigin(headers: Record<string, string | string[] | undefined>, host: string): string {
  const raw = headers[':authority'] ?? headers.host;
  const port = /:(\d{1,5})$/.exec(Array.isArray(raw) ? (raw[0] ?? '') : (raw ?? ''))?.[1];
  return `https://${host.includes(':') ? `[${host}]` : host}${port && port !== '443' ? `:${port}` : ''}`;
}

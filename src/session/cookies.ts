// Reading and writing Gatehouse's cookies, and removing them from what the upstream receives.
// All are __Host- cookies: Secure, Path=/, no Domain, so a sibling subdomain can neither read nor plant them; except
// the session cookie of a site with [auth] cookie_domain, which is meant for the sibling sites (__Secure-, Domain).

/** The value of one cookie from a Cookie header (HTTP/1.1 sends one header; HTTP/2 may send several, joined by Node). */
export function readCookie(header: string | string[] | undefined, name: string): string | undefined {
  if (header === undefined) return undefined;
  const text = Array.isArray(header) ? header.join('; ') : header;
  const at = text.indexOf(`${name}=`);
  if (at < 0) return undefined;
  // The name must start the header or follow "; ", so "x__Host-a=" never matches "__Host-a".
  if (at > 0 && text[at - 1] !== ' ' && text[at - 1] !== ';') {
    return readCookie(text.slice(at + name.length), name);
  }
  const start = at + name.length + 1;
  const end = text.indexOf(';', start);
  return text.slice(start, end < 0 ? undefined : end).trim();
}

/** Names and values of every cookie whose name starts with prefix. */
export function cookiesWithPrefix(header: string | string[] | undefined, prefix: string): [string, string][] {
  if (header === undefined) return [];
  const text = Array.isArray(header) ? header.join('; ') : header;
  const found: [string, string][] = [];
  for (const part of text.split(';')) {
    const pair = part.trim();
    if (!pair.startsWith(prefix)) continue;
    const eq = pair.indexOf('=');
    if (eq > 0) found.push([pair.slice(0, eq), pair.slice(eq + 1)]);
  }
  return found;
}

/** The Cookie header without the cookies whose name starts with prefix; undefined when nothing is left. */
export function withoutCookies(header: string | string[], prefix: string): string | undefined {
  const text = Array.isArray(header) ? header.join('; ') : header;
  if (!text.includes(prefix)) return text;
  const kept = text
    .split(';')
    .map((p) => p.trim())
    .filter((p) => p !== '' && !p.startsWith(prefix));
  return kept.length > 0 ? kept.join('; ') : undefined;
}

export interface CookieOptions {
  maxAgeSeconds?: number;
  sameSite: 'Lax' | 'Strict';
  domain?: string;
}

export function setCookie(name: string, value: string, options: CookieOptions): string {
  const age = options.maxAgeSeconds !== undefined ? `; Max-Age=${Math.max(0, Math.floor(options.maxAgeSeconds))}` : '';
  const domain = options.domain ? `; Domain=${options.domain}` : '';
  return `${name}=${value}; Path=/${domain}; Secure; HttpOnly; SameSite=${options.sameSite}${age}`;
}

export function clearCookie(name: string, domain?: string): string {
  return `${name}=; Path=/${domain ? `; Domain=${domain}` : ''}; Secure; HttpOnly; SameSite=Lax; Max-Age=0`;
}

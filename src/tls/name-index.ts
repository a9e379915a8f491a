// Looks a host name up among exact names and "*.example.com" wildcards, as TLS does it
// (a wildcard stands for exactly one left-most label: RFC 6125 §6.4.3).

export class NameIndex<T> {
  private readonly exact = new Map<string, T>();
  private readonly wildcard = new Map<string, T>();

  set(name: string, value: T): void {
    if (name.startsWith('*.')) this.wildcard.set(name.slice(2), value);
    else this.exact.set(name, value);
  }

  get(host: string): T | undefined {
    const found = this.exact.get(host);
    if (found !== undefined) return found;
    const dot = host.indexOf('.');
    return dot > 0 ? this.wildcard.get(host.slice(dot + 1)) : undefined;
  }
}

/** "Code.Example.com.:8443" → "code.example.com"; "[::1]:8443" → "::1". Undefined for an empty or malformed host. */
export function normalizeHost(raw: string | undefined): string | undefined {
  if (!raw) return undefined;
  let host = raw.trim().toLowerCase();
  if (host.startsWith('[')) {
    const end = host.indexOf(']');
    if (end < 0) return undefined;
    return host.slice(1, end);
  }
  const colon = host.lastIndexOf(':');
  if (colon >= 0) {
    if (!/^\d{1,5}$/.test(host.slice(colon + 1))) return undefined;
    host = host.slice(0, colon);
  }
  if (host.endsWith('.')) host = host.slice(0, -1);
  return host || undefined;
}

// add_header / allow+deny / limit_req → response_headers, hsts, ip_rules, rate_limit: of the site where the server
// sets them, of a route where its location does.
import { imply, refuse, refuseOnce, src, type TranslateContext } from './context.ts';
import type { Directive } from './nginx-parse.ts';
import type { Entry, Source } from './toml-writer.ts';

function responseHeaders(ctx: TranslateContext, list: Directive[]): Entry | undefined {
  const headers: Record<string, string> = {};
  const from: Source[] = [];
  for (const d of list) {
    const [name, value = ''] = d.args;
    if (!name || name.toLowerCase() === 'strict-transport-security') continue;
    if (name.toLowerCase() === 'set-cookie' && value.startsWith('$auth_cookie')) {
      imply(ctx, d, 'the session cookie is Gatehouse’s own');
      continue;
    }
    if (value.includes('$')) {
      refuseOnce(ctx, d, 'response header values are text, without variables');
      continue;
    }
    headers[name] = value;
    from.push(src(d));
  }
  return from.length > 0
    ? { kind: 'key', key: 'response_headers', value: headers, from, note: 'on every response (nginx "always")' }
    : undefined;
}

/** The first Strict-Transport-Security add_header of the server or its locations → the site's hsts. */
export function hstsOf(ctx: TranslateContext, list: Directive[]): Entry | undefined {
  const d = list.find((x) => x.args[0]?.toLowerCase() === 'strict-transport-security');
  if (!d) return undefined;
  const value = d.args[1] ?? '';
  const maxAge = /max-age=(\d+)/i.exec(value)?.[1];
  const include = /includesubdomains/i.test(value);
  const preload = /preload/i.test(value);
  if (!maxAge) {
    refuse(ctx, d, 'no max-age in the Strict-Transport-Security value');
    return undefined;
  }
  const simple = maxAge === '31536000' && !include && !preload;
  return {
    kind: 'key',
    key: 'hsts',
    value: simple ? true : { max_age: `${maxAge}s`, include_subdomains: include, preload },
    from: [src(d)],
  };
}

function ipRules(ctx: TranslateContext, list: Directive[]): Entry | undefined {
  if (list.length === 0) return undefined;
  if (list.length === 1 && list[0]!.name === 'allow' && list[0]!.args[0] === 'all') {
    imply(ctx, list[0]!, 'everyone is allowed unless ip_rules say otherwise');
    return undefined;
  }
  return {
    kind: 'key',
    key: 'ip_rules',
    value: list.map((d) => `${d.name} ${d.args[0]}`),
    from: list.map(src),
    note: 'first match wins; refused: 403',
  };
}

function rateLimit(ctx: TranslateContext, list: Directive[]): Entry | undefined {
  const d = list[0];
  if (!d) return undefined;
  const zone = d.args.find((a) => a.startsWith('zone='))?.slice(5);
  const z = zone ? ctx.limitZones.get(zone) : undefined;
  if (!z) {
    refuse(ctx, d, `no limit_req_zone ${zone ?? ''} per client address`);
    return undefined;
  }
  const burst = Number(d.args.find((a) => a.startsWith('burst='))?.slice(6) ?? 0);
  if (!d.args.includes('nodelay'))
    imply(ctx, d, 'without nodelay nginx delays requests within the burst; Gatehouse answers them at once');
  for (const extra of list.slice(1)) refuse(ctx, extra, 'one rate_limit per route');
  return {
    kind: 'key',
    key: 'rate_limit',
    value: { rate: z.rate, burst },
    from: [src(z.d), src(d)],
    note: '429 with Retry-After beyond it',
  };
}

/** response_headers, ip_rules and rate_limit of the given directives, in that order, each when there is one. */
export function accessKnobs(
  ctx: TranslateContext,
  addHeaders: Directive[],
  access: Directive[],
  limitReq: Directive[],
): Entry[] {
  const entries: Entry[] = [];
  const rh = responseHeaders(ctx, addHeaders);
  if (rh) entries.push(rh);
  const ip = ipRules(ctx, access);
  if (ip) entries.push(ip);
  const rate = rateLimit(ctx, limitReq);
  if (rate) entries.push(rate);
  return entries;
}

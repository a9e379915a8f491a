// The per-site / per-route knobs nginx configs carry (add_header, proxy_set_header, allow/deny, limit_req, return),
// checked and turned into the model's plain data. A route's setting replaces the site's for ip_rules and rate_limit
// (nginx: a location with its own allow/deny or limit_req inherits none); headers merge name by name.
import net from 'node:net';
import { HOP_BY_HOP } from '../base/hop-by-hop.ts';
import type { IpRule, RateLimit, RequestHeaderRule, ResponseHeaders, RouteAction } from './model.ts';
import type { KeyPath, Report } from './problems.ts';
import { parseTemplate, REDIRECT_VARIABLES, renderTemplate, REQUEST_HEADER_VARIABLES } from './templates.ts';

/** Names that describe one connection or the message framing: Gatehouse sets them per connection. */
const FRAMING: ReadonlySet<string> = new Set([...HOP_BY_HOP, 'content-length']);

/** Identity headers: set only from a verified session (oauth2-proxy's names, in every "_"/"." spelling). */
const IDENTITY = /^x-(auth-request-[\w-]+|forwarded-(user|email|preferred-username|groups|access-token))$/;

function normalized(name: string): string {
  return name.toLowerCase().replace(/[_.]/g, '-');
}

export function responseHeaders(
  raw: Record<string, string> | undefined,
  at: KeyPath,
  problem: Report,
  inherited: ResponseHeaders = {},
): ResponseHeaders {
  const out: Record<string, string> = { ...inherited };
  for (const [name, value] of Object.entries(raw ?? {})) {
    const lower = name.toLowerCase();
    if (lower === 'strict-transport-security') problem([...at, name], 'use hsts = true (or an hsts table) instead');
    else if (FRAMING.has(lower)) problem([...at, name], `${name} describes the connection; Gatehouse sets it`);
    else if (lower === 'x-request-id')
      problem([...at, name], "X-Request-Id is Gatehouse's request id (the log line's req_id)");
    else out[lower] = value;
  }
  return out;
}

export function requestHeaders(
  raw: Record<string, string> | undefined,
  at: KeyPath,
  problem: Report,
  owned: { authorization: boolean },
  inherited: readonly RequestHeaderRule[] = [],
): RequestHeaderRule[] {
  const out = new Map(inherited.map((rule) => [rule.name, rule]));
  for (const [name, value] of Object.entries(raw ?? {})) {
    const lower = name.toLowerCase();
    const refusal = IDENTITY.test(normalized(name))
      ? `${name} is an identity header: Gatehouse sets it from the verified session only ([auth] set_xauthrequest, pass_user_headers, pass_access_token)`
      : owned.authorization && normalized(name) === 'authorization'
        ? 'Authorization is set by Gatehouse on this site ([auth] pass_authorization_header = true)'
        : normalized(name) === 'x-request-id'
          ? "X-Request-Id is Gatehouse's request id (the log line's req_id)"
          : FRAMING.has(lower)
            ? `${name} describes the connection; Gatehouse sets it (WebSocket upgrades are forwarded on routes with websocket = true)`
            : undefined;
    if (refusal) {
      problem([...at, name], refusal);
      continue;
    }
    const template = parseTemplate(value, REQUEST_HEADER_VARIABLES, true);
    if (typeof template === 'string') problem([...at, name], template);
    else out.set(lower, { name: lower, value: template });
  }
  return [...out.values()];
}

export function ipRules(raw: string[] | undefined, at: KeyPath, problem: Report): IpRule[] | undefined {
  if (raw === undefined) return undefined;
  const rules: IpRule[] = [];
  raw.forEach((text, i) => {
    const match = /^\s*(allow|deny)\s+(\S+)\s*$/.exec(text);
    const range = match && (match[2] === 'all' ? 'all' : cidr(match[2]!));
    if (!match || !range) {
      problem(
        [...at, i],
        `"${text}" is not a rule: "allow ADDRESS", "allow CIDR", "deny CIDR", "deny all" (examples: "allow 10.0.0.0/8", "deny all")`,
      );
      return;
    }
    rules.push({ allow: match[1] === 'allow', range });
  });
  return rules;
}

function cidr(text: string): IpRule['range'] | undefined {
  const [address, bits, extra] = text.split('/');
  const family = net.isIP(address ?? '');
  if (family === 0 || extra !== undefined) return undefined;
  const max = family === 4 ? 32 : 128;
  if (bits !== undefined && !(/^\d+$/.test(bits) && Number(bits) <= max)) return undefined;
  return { address: address!, bits: bits === undefined ? max : Number(bits), family: family === 4 ? 'ipv4' : 'ipv6' };
}

export function rateLimit(raw: { rate: string; burst: number } | undefined): RateLimit | undefined {
  if (!raw) return undefined;
  const count = Number.parseInt(raw.rate, 10);
  return { perSecond: raw.rate.endsWith('r/m') ? count / 60 : count, burst: raw.burst };
}

const SAMPLE: Record<string, string> = { scheme: 'https', host: 'example.com', request_uri: '/a?b', uri: '/a' };
const REDIRECT_STATUSES = [301, 302, 303, 307, 308] as const;

/** `redirect = URL` with an optional `status`: nginx `return 301 URL`. */
export function redirectAction(
  location: string,
  status: number | undefined,
  at: KeyPath,
  problem: Report,
): RouteAction | undefined {
  const code = status ?? 301;
  if (!(REDIRECT_STATUSES as readonly number[]).includes(code)) {
    problem([...at, 'status'], `a redirect's status is 301, 302, 303, 307 or 308 (found ${code})`);
    return undefined;
  }
  const template = parseTemplate(location, REDIRECT_VARIABLES, false);
  if (typeof template === 'string') {
    problem([...at, 'redirect'], template);
    return undefined;
  }
  const sample = renderTemplate(template, {
    variable: (name) => SAMPLE[name] ?? '',
    header: () => '',
  });
  let absolute = false;
  try {
    absolute = /^https?:$/.test(new URL(sample).protocol);
  } catch {}
  if (!absolute && !(sample.startsWith('/') && !sample.startsWith('//'))) {
    problem([...at, 'redirect'], 'a redirect is an http:// or https:// URL, or a path starting with "/"');
    return undefined;
  }
  return { kind: 'redirect', location: template, status: code as (typeof REDIRECT_STATUSES)[number] };
}

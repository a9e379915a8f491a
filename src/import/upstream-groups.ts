// upstream {} blocks → a site's [upstreams.NAME] (round-robin over equal servers), and nginx Plus health_check → the
// group's active health check.
import { imply, refuse, show, src, type SiteOut, type TranslateContext, type Upstream } from './context.ts';
import { REFUSED } from './nginx-directives.ts';
import type { Directive } from './nginx-parse.ts';
import { formatSource, type Entry } from './toml-writer.ts';

export function readUpstream(ctx: TranslateContext, d: Directive): Upstream {
  const up: Upstream = { d, servers: [], lines: [] };
  let failTimeout: { value: string; d: Directive } | undefined;
  for (const x of d.block ?? []) {
    if (x.name === 'server') {
      const server = readUpstreamServer(ctx, x);
      if (server.failTimeout) failTimeout = server.failTimeout;
      if (server.address) up.servers.push(server.address);
      continue;
    }
    if (x.name === 'keepalive' && /^[1-9]\d*$/.test(x.args[0] ?? '')) {
      up.lines.push({
        kind: 'key',
        key: 'keepalive',
        value: Number(x.args[0]),
        from: [src(x)],
        note: 'connections per server, and the most requests it runs at once',
      });
      continue;
    }
    if (x.name === 'keepalive_timeout' || x.name === 'keepalive_requests') {
      up.lines.push({
        kind: 'comment',
        text: `${formatSource(src(x))}: ${show(x)}: idle upstream connections are kept by undici`,
      });
      continue;
    }
    refuse(
      ctx,
      x,
      x.name === 'least_conn' || x.name === 'ip_hash' || x.name === 'hash'
        ? 'round-robin only'
        : (REFUSED[x.name] ?? 'no equivalent in an upstream group'),
    );
  }
  if (failTimeout)
    up.lines.push({ kind: 'key', key: 'fail_timeout', value: failTimeout.value, from: [src(failTimeout.d)] });
  return up;
}

/** `server ADDRESS [params]`: the address unless it is down (or a unix socket), and its fail_timeout if any. */
function readUpstreamServer(
  ctx: TranslateContext,
  x: Directive,
): { address?: string; failTimeout?: { value: string; d: Directive } } {
  const [address, ...params] = x.args;
  if (!address || address.startsWith('unix:')) {
    refuse(ctx, x, 'unix sockets are not upstreams: listen on 127.0.0.1');
    return {};
  }
  let down = false;
  let failTimeout: { value: string; d: Directive } | undefined;
  for (const p of params) {
    const [k, v] = p.split('=');
    if (k === 'fail_timeout') failTimeout = { value: /^\d+$/.test(v!) ? `${v}s` : v!, d: x };
    else if (k === 'max_fails') imply(ctx, x, 'max_fails: one refused connection takes a server out for fail_timeout');
    else if (k === 'weight' && v === '1') continue;
    else if (k === 'down') down = true;
    else refuse(ctx, x, `server parameter "${p}": round-robin over equal servers only`, 'server');
  }
  return { address: down ? undefined : address, failTimeout };
}

/** The site's copy of an upstream group (made the first time a route proxies to it), with its health_check. */
export function useUpstreamGroup(
  ctx: TranslateContext,
  site: SiteOut,
  host: string,
  scheme: string,
  healthCheck: Directive | undefined,
): void {
  const group = ctx.upstreamBlocks.get(host)!;
  if (!site.upstreams.has(host)) {
    const body: Entry[] = [
      { kind: 'key', key: 'servers', value: group.servers.map((x) => `${scheme}://${x}`), from: [src(group.d)] },
      ...group.lines,
    ];
    site.upstreams.set(host, body);
  }
  if (healthCheck) {
    const entry = activeHealthCheck(ctx, healthCheck);
    const body = site.upstreams.get(host)!;
    if (entry && !body.some((x) => x.kind === 'key' && x.key === 'health_check')) body.push(entry);
  }
}

/** nginx Plus `health_check [interval=5] [fails=1] [passes=1] [uri=/]` → the group's health_check (nginx's defaults). */
function activeHealthCheck(ctx: TranslateContext, d: Directive): Entry | undefined {
  const p = new Map(d.args.map((a) => a.split('=', 2) as [string, string]));
  const unknown = [...p.keys()].find((k) => !['interval', 'fails', 'passes', 'uri'].includes(k));
  if (unknown) {
    refuse(ctx, d, `health_check parameter "${unknown}" has no equivalent (path, interval, healthy, unhealthy)`);
    return undefined;
  }
  const interval = p.get('interval') ?? '5';
  return {
    kind: 'key',
    key: 'health_check',
    value: {
      path: p.get('uri') ?? '/',
      interval: /^\d+$/.test(interval) ? `${interval}s` : interval,
      healthy: Number(p.get('passes') ?? 1),
      unhealthy: Number(p.get('fails') ?? 1),
    },
    from: [src(d)],
  };
}

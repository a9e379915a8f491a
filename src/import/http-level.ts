// The main and http levels of nginx.conf → gatehouse.toml: workers, logs, trusted proxies, the proxy defaults every
// route inherits, listeners, ACME; upstream {} blocks and limit_req_zone are kept for the server blocks to use.
import crypto from 'node:crypto';
import { note, refuse, refuseOnce, src, type Listen, type TranslateContext } from './context.ts';
import { IMPLIED, REFUSED } from './nginx-directives.ts';
import type { Directive, NginxConfig } from './nginx-parse.ts';
import { applyCommon, emptyScope, type Scope } from './scope.ts';
import type { Entry, Source, TomlValue } from './toml-writer.ts';
import { readUpstream } from './upstream-groups.ts';

/** The main and http levels read: the http scope every server inherits, and the server blocks in order. */
export function translateHttpLevel(
  ctx: TranslateContext,
  nginx: NginxConfig,
): { httpScope: Scope; servers: Directive[] } {
  const top = nginx.directives;
  refuseErrorPagesWithout401(ctx, top);
  const httpScope = emptyScope();
  const servers: Directive[] = [];
  const maps: Directive[] = [];
  readMainLevel(ctx, top, servers, maps);
  for (const d of top.find((x) => x.name === 'events')?.block ?? [])
    note(ctx, ctx.global.notes, d, IMPLIED[d.name] ?? 'event loop tuning is Node’s');
  for (const d of top.find((x) => x.name === 'http')?.block ?? []) {
    if (d.name === 'server') servers.push(d);
    else if (applyCommon(ctx, d, httpScope, 'http')) continue;
    else if (readHttpDirective(ctx, d, maps)) continue;
    else if (IMPLIED[d.name]) note(ctx, ctx.global.notes, d, IMPLIED[d.name]!);
    else if (d.name === 'ssl_certificate' || d.name === 'ssl_certificate_key')
      httpScope.knobs.set(d.name, { value: d.args[0]!, d, level: 'http' });
    else refuse(ctx, d, REFUSED[d.name] ?? 'no equivalent in Gatehouse');
  }
  mergeTrustedProxies(ctx);
  for (const [key, k] of httpScope.knobs) {
    if (key.startsWith('ssl_')) continue;
    ctx.global.proxy.push({ kind: 'key', key, value: k.value, from: [src(k.d)] });
  }
  for (const m of maps) translateMap(ctx, m);
  return { httpScope, servers };
}

/** Error pages are Gatehouse's own; only the 401 of the auth_request pattern is read (with its location). */
function refuseErrorPagesWithout401(ctx: TranslateContext, list: Directive[]): void {
  for (const d of list) {
    if (d.name === 'error_page' && !d.args.includes('401'))
      refuseOnce(ctx, d, 'error pages are Gatehouse’s own (HTML, or JSON when asked)');
    if (d.block && !['map', 'types', 'geo', 'split_clients'].includes(d.name)) refuseErrorPagesWithout401(ctx, d.block);
  }
}

function readMainLevel(ctx: TranslateContext, top: Directive[], servers: Directive[], maps: Directive[]): void {
  for (const d of top) {
    switch (d.name) {
      case 'http':
      case 'events':
        continue;
      case 'worker_processes':
        if (d.args[0] !== 'auto' && !/^[1-9]\d*$/.test(d.args[0] ?? '')) {
          refuse(ctx, d, 'workers is "auto" or a number');
          continue;
        }
        ctx.global.top.push({
          kind: 'key',
          key: 'workers',
          value: d.args[0] === 'auto' ? 'auto' : Number(d.args[0]),
          from: [src(d)],
        });
        continue;
      case 'server':
        servers.push(d);
        continue;
    }
    if (IMPLIED[d.name]) note(ctx, ctx.global.notes, d, IMPLIED[d.name]!);
    else if (!readHttpDirective(ctx, d, maps)) refuse(ctx, d, REFUSED[d.name] ?? 'no equivalent in Gatehouse');
  }
}

/** A directive of the http level that is not a route knob; false when it is none Gatehouse reads there. */
function readHttpDirective(ctx: TranslateContext, d: Directive, maps: Directive[]): boolean {
  switch (d.name) {
    case 'map':
      maps.push(d);
      return true;
    case 'upstream':
      ctx.upstreamBlocks.set(d.args[0]!, readUpstream(ctx, d));
      return true;
    case 'limit_req_zone':
      readLimitZone(ctx, d);
      return true;
    case 'access_log':
      ctx.global.log.push({
        kind: 'key',
        key: 'access_log',
        value: d.args[0] !== 'off',
        from: [src(d)],
        note: d.args[0] !== 'off' ? 'one JSON line per request on standard output' : undefined,
      });
      return true;
    case 'set_real_ip_from': {
      const cidr = d.args[0]!;
      if (cidr === 'unix:') refuse(ctx, d, 'no unix sockets');
      else ctx.global.proxy.push({ kind: 'key', key: 'trusted_proxies', value: [cidr], from: [src(d)] });
      return true;
    }
  }
  return false;
}

function readLimitZone(ctx: TranslateContext, d: Directive): void {
  const zone = d.args
    .find((a) => a.startsWith('zone='))
    ?.slice(5)
    .split(':')[0];
  const rate = d.args.find((a) => a.startsWith('rate='))?.slice(5);
  if (!['$binary_remote_addr', '$remote_addr'].includes(d.args[0]!) || !zone || !rate)
    refuse(ctx, d, 'rate limits are per client address ($binary_remote_addr) only');
  else ctx.limitZones.set(zone, { rate, d });
}

/** One trusted_proxies line for every set_real_ip_from, first in [proxy]. */
function mergeTrustedProxies(ctx: TranslateContext): void {
  const global = ctx.global;
  const trusted = global.proxy.filter((e) => e.kind === 'key' && e.key === 'trusted_proxies') as Extract<
    Entry,
    { kind: 'key' }
  >[];
  if (trusted.length <= 1) return;
  global.proxy = global.proxy.filter((e) => !trusted.includes(e as never));
  global.proxy.unshift({
    kind: 'key',
    key: 'trusted_proxies',
    value: trusted.flatMap((t) => t.value as TomlValue[]),
    from: trusted.flatMap((t) => t.from),
  });
}

function translateMap(ctx: TranslateContext, m: Directive): void {
  const [from, to] = m.args;
  if (from === '$http_upgrade' && to !== undefined)
    note(ctx, ctx.global.notes, m, 'the WebSocket Connection map: upgrades are forwarded without it');
  else refuse(ctx, m, 'no variables: map has no equivalent');
}

/** The [https] and [http] listeners the servers gathered, PROXY protocol and the ACME account. */
export function finishGlobalTables(ctx: TranslateContext): void {
  const global = ctx.global;
  const https = listenLine(ctx.httpsListen, 'HTTP/1.1 and HTTP/2 on each (ALPN)');
  if (https) global.https.unshift(https);
  if (ctx.proxyProtocol)
    global.https.push({ kind: 'key', key: 'proxy_protocol', value: true, from: [src(ctx.proxyProtocol)] });
  const plain = listenLine(ctx.httpListen, 'answers ACME challenges, then redirects to HTTPS (308)');
  if (plain) global.http.push(plain);
  finishStore(ctx);
  if (ctx.usesAcme)
    global.acme.push(
      {
        kind: 'comment',
        text: "certbot's account accepted Let's Encrypt's subscriber agreement; Gatehouse registers its own account",
      },
      { kind: 'key', key: 'terms_of_service_agreed', value: true, from: [src(ctx.usesAcme)] },
    );
}

/** The Redis password into its 0600 file; with ACME, the key that seals certificate keys in Redis (check requires it). */
function finishStore(ctx: TranslateContext): void {
  const store = ctx.global.store;
  if (store.length === 0) return;
  if (ctx.storePassword) {
    const file = 'secrets/store.password';
    ctx.secretFiles.push({ name: file, text: `${ctx.storePassword.value}\n`, mode: 0o600 });
    const at = store.findIndex((e) => e.kind === 'key' && e.key === 'url') + 1 || store.length;
    store.splice(at, 0, {
      kind: 'key',
      key: 'password',
      value: `\${file:${file}}`,
      from: [ctx.storePassword.from],
      note: 'the value is in that file (0600)',
    });
  }
  if (ctx.usesAcme) {
    const file = 'secrets/store.encryption_key';
    ctx.secretFiles.push({ name: file, text: `${crypto.randomBytes(32).toString('base64')}\n`, mode: 0o600 });
    store.push(
      {
        kind: 'comment',
        text: 'ACME keys kept in Redis are sealed with this key (generated: 32 random bytes); copy it to every instance',
      },
      { kind: 'key', key: 'encryption_key', value: `\${file:${file}}`, from: [src(ctx.usesAcme)] },
    );
  }
}

/** `listen = [...]`, each address once (with every line that named it); undefined when there is none. */
function listenLine(list: Listen[], note: string): Entry | undefined {
  const seen = new Map<string, Source[]>();
  for (const l of list) seen.set(l.value, [...(seen.get(l.value) ?? []), l.from]);
  if (seen.size === 0) return undefined;
  return { kind: 'key', key: 'listen', value: [...seen.keys()], from: [...seen.values()].flat(), note };
}

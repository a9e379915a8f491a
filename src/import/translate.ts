// nginx + oauth2-proxy → gatehouse.toml and one site file per server block. Every directive ends up in one of three
// places: a generated line ("# from file:line"), a comment saying why it needs no setting (implied), or the list of
// refusals (`file:line: directive: why`). Nothing is dropped without a word. The tables of what each directive
// becomes are in nginx-directives.ts.
import {
  newContext,
  note as noteIn,
  refuse as refuseIn,
  refuseOnce as refuseOnceIn,
  src,
  type ImportResult,
  type TranslateOptions,
} from './context.ts';
import { IMPLIED, REFUSED } from './nginx-directives.ts';
import type { Directive, NginxConfig } from './nginx-parse.ts';
import type { OAuth2ProxyConfig } from './oauth2-proxy.ts';
import { applyCommon as applyCommonIn, emptyScope, type Level, type Scope } from './scope.ts';
import { translateServer } from './server-site.ts';
import { renderToml, formatSource, type Entry, type Source, type Table, type TomlValue } from './toml-writer.ts';
import { readUpstream } from './upstream-groups.ts';

export type { ImportResult, TranslateOptions } from './context.ts';

export function translate(nginx: NginxConfig, cfgs: OAuth2ProxyConfig[], options: TranslateOptions): ImportResult {
  const ctx = newContext(cfgs, options);
  const { refused, implied } = ctx;
  const refuse = (d: Directive, why: string, name = d.name) => refuseIn(ctx, d, why, name);
  const refuseOnce = (d: Directive, why: string) => refuseOnceIn(ctx, d, why);

  const { global, httpsListen, httpListen, upstreamBlocks, limitZones, sites, secretFiles, usedCfgs } = ctx;
  const note = (list: Entry[], d: Directive, why: string) => noteIn(ctx, list, d, why);

  const applyCommon = (d: Directive, s: Scope, level: Level) => applyCommonIn(ctx, d, s, level);

  const top: Directive[] = nginx.directives;
  const walk = (list: Directive[]): void => {
    for (const d of list) {
      if (d.name === 'error_page' && !d.args.includes('401'))
        refuseOnce(d, 'error pages are Gatehouse’s own (HTML, or JSON when asked)');
      if (d.block && !['map', 'types', 'geo', 'split_clients'].includes(d.name)) walk(d.block);
    }
  };
  walk(top);
  const httpBlock = top.find((d) => d.name === 'http');
  const httpScope = emptyScope();
  const servers: Directive[] = [];
  const maps: Directive[] = [];

  for (const d of top) {
    switch (d.name) {
      case 'http':
      case 'events':
        continue;
      case 'worker_processes':
        if (d.args[0] !== 'auto' && !/^[1-9]\d*$/.test(d.args[0] ?? '')) {
          refuse(d, 'workers is "auto" or a number');
          continue;
        }
        global.top.push({
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
    if (IMPLIED[d.name]) note(global.notes, d, IMPLIED[d.name]!);
    else if (!handleHttpLevel(d)) refuse(d, REFUSED[d.name] ?? 'no equivalent in Gatehouse');
  }
  for (const d of top.find((x) => x.name === 'events')?.block ?? [])
    note(global.notes, d, IMPLIED[d.name] ?? 'event loop tuning is Node’s');

  function handleHttpLevel(d: Directive): boolean {
    if (d.name === 'map') {
      maps.push(d);
      return true;
    }
    if (d.name === 'upstream') {
      upstreamBlocks.set(d.args[0]!, readUpstream(ctx, d));
      return true;
    }
    if (d.name === 'limit_req_zone') {
      const zone = d.args
        .find((a) => a.startsWith('zone='))
        ?.slice(5)
        .split(':')[0];
      const rate = d.args.find((a) => a.startsWith('rate='))?.slice(5);
      if (!['$binary_remote_addr', '$remote_addr'].includes(d.args[0]!) || !zone || !rate)
        refuse(d, 'rate limits are per client address ($binary_remote_addr) only');
      else limitZones.set(zone, { rate, d });
      return true;
    }
    if (d.name === 'access_log') {
      global.log.push({
        kind: 'key',
        key: 'access_log',
        value: d.args[0] !== 'off',
        from: [src(d)],
        note: d.args[0] !== 'off' ? 'one JSON line per request on standard output' : undefined,
      });
      return true;
    }
    if (d.name === 'set_real_ip_from') {
      const cidr = d.args[0]!;
      if (cidr === 'unix:') refuse(d, 'no unix sockets');
      else global.proxy.push({ kind: 'key', key: 'trusted_proxies', value: [cidr], from: [src(d)] });
      return true;
    }
    return false;
  }

  for (const d of httpBlock?.block ?? []) {
    if (d.name === 'server') servers.push(d);
    else if (applyCommon(d, httpScope, 'http')) continue;
    else if (handleHttpLevel(d)) continue;
    else if (IMPLIED[d.name]) note(global.notes, d, IMPLIED[d.name]!);
    else if (d.name === 'ssl_certificate' || d.name === 'ssl_certificate_key')
      httpScope.knobs.set(d.name, { value: d.args[0]!, d, level: 'http' });
    else refuse(d, REFUSED[d.name] ?? 'no equivalent in Gatehouse');
  }
  // Merge the trusted_proxies lines into one.
  const trusted = global.proxy.filter((e) => e.kind === 'key' && e.key === 'trusted_proxies') as Extract<
    Entry,
    { kind: 'key' }
  >[];
  if (trusted.length > 1) {
    global.proxy = global.proxy.filter((e) => !trusted.includes(e as never));
    global.proxy.unshift({
      kind: 'key',
      key: 'trusted_proxies',
      value: trusted.flatMap((t) => t.value as TomlValue[]),
      from: trusted.flatMap((t) => t.from),
    });
  }
  for (const [key, k] of httpScope.knobs) {
    if (key.startsWith('ssl_')) continue;
    global.proxy.push({ kind: 'key', key, value: k.value, from: [src(k.d)] });
  }

  for (const m of maps) {
    const [from, to] = m.args;
    if (from === '$http_upgrade' && to !== undefined)
      note(global.notes, m, 'the WebSocket Connection map: upgrades are forwarded without it');
    else refuse(m, 'no variables: map has no equivalent');
  }

  for (const server of servers) translateServer(ctx, httpScope, server);

  // Unused oauth2-proxy configurations are reported: their protection would otherwise silently vanish.
  for (const cfg of cfgs)
    if (!usedCfgs.has(cfg))
      refused.push({
        from: { file: cfg.file, line: 1 },
        name: 'oauth2-proxy',
        why: 'no translated server block sends auth_request to this oauth2-proxy',
      });

  // gatehouse.toml
  const dedupeListen = (list: { value: string; from: Source }[]) => {
    const seen = new Map<string, Source[]>();
    for (const l of list) seen.set(l.value, [...(seen.get(l.value) ?? []), l.from]);
    return seen;
  };
  const https = dedupeListen(httpsListen);
  if (https.size > 0)
    global.https.unshift({
      kind: 'key',
      key: 'listen',
      value: [...https.keys()],
      from: [...https.values()].flat(),
      note: 'HTTP/1.1 and HTTP/2 on each (ALPN)',
    });
  if (ctx.proxyProtocol)
    global.https.push({ kind: 'key', key: 'proxy_protocol', value: true, from: [src(ctx.proxyProtocol)] });
  const plain = dedupeListen(httpListen);
  if (plain.size > 0)
    global.http.push({
      kind: 'key',
      key: 'listen',
      value: [...plain.keys()],
      from: [...plain.values()].flat(),
      note: 'answers ACME challenges, then redirects to HTTPS (308)',
    });
  if (ctx.usesAcme) {
    global.acme.push(
      {
        kind: 'comment',
        text: "certbot's account accepted Let's Encrypt's subscriber agreement; Gatehouse registers its own account",
      },
      { kind: 'key', key: 'terms_of_service_agreed', value: true, from: [src(ctx.usesAcme)] },
    );
  }
  const files: ImportResult['files'] = [];
  const sources = [nginx.file, ...cfgs.map((c) => c.file)];
  const header = [
    `Written by \`gatehouse import\` from ${sources.join(', ')}.`,
    'Each line names where it came from; check with `gatehouse check --config <this folder>`.',
  ];
  files.push({
    name: 'gatehouse.toml',
    text: renderToml(header, [
      { heading: [], entries: [{ kind: 'key', key: 'sites_dir', value: 'sites', from: [] }, ...global.top] },
      { name: 'https', heading: [], entries: global.https },
      ...(global.http.length ? [{ name: 'http', heading: [], entries: global.http }] : []),
      ...(global.log.length ? [{ name: 'log', heading: [], entries: global.log }] : []),
      ...(global.proxy.length ? [{ name: 'proxy', heading: [], entries: global.proxy }] : []),
      ...(global.acme.length ? [{ name: 'acme', heading: [], entries: global.acme }] : []),
      ...(global.metrics.length ? [{ name: 'metrics', heading: [], entries: global.metrics }] : []),
      ...(global.notes.length ? [{ heading: ['Needs no setting:'], entries: global.notes } as Table] : []),
    ]),
  });
  for (const site of sites) {
    const tables: Table[] = [
      { heading: [], entries: site.top },
      { name: 'tls', heading: [], entries: site.tls },
      ...[...site.upstreams].map(([name, entries]) => ({ name: `upstreams.${name}`, heading: [], entries })),
      ...site.routes.map((entries) => ({ name: 'routes', array: true, heading: [], entries })),
      ...(site.auth.length
        ? [{ name: 'auth', heading: ['oauth2-proxy, translated: Gatehouse logs in itself'], entries: site.auth }]
        : []),
      ...(site.notes.length ? [{ heading: ['Needs no setting:'], entries: site.notes } as Table] : []),
    ];
    // Comments after [auth] would read as part of it: notes go to the top instead.
    const notes = tables.pop()!;
    if (notes.name !== undefined || notes.heading[0] !== 'Needs no setting:') tables.push(notes);
    const fileHeader = [
      ...header.slice(0, 1),
      ...(notes.heading[0] === 'Needs no setting:'
        ? ['', 'Needs no setting:', ...notes.entries.map((n) => (n.kind === 'comment' ? n.text : ''))]
        : []),
    ];
    files.push({ name: `sites/${site.fileName}.toml`, text: renderToml(fileHeader, tables) });
  }
  files.push(...secretFiles);
  const seen = new Set<string>();
  const unique = implied.filter((f) => {
    const key = `${formatSource(f.from)} ${f.name}`;
    return !seen.has(key) && !!seen.add(key);
  });
  return { files, refused, implied: unique };
}

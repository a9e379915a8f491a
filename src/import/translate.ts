// nginx + oauth2-proxy → gatehouse.toml and one site file per server block. Every directive ends up in one of three
// places: a generated line ("# from file:line"), a comment saying why it needs no setting (implied), or the list of
// refusals (`file:line: directive: why`). Nothing is dropped without a word. The tables of what each directive
// becomes are in nginx-directives.ts.
import path from 'node:path';
import {
  dedupe,
  imply as implyIn,
  newContext,
  note as noteIn,
  refuse as refuseIn,
  refuseOnce as refuseOnceIn,
  src,
  type ImportResult,
  type SiteOut,
  type TranslateOptions,
} from './context.ts';
import { translateLocations } from './locations.ts';
import { IMPLIED, REFUSED } from './nginx-directives.ts';
import type { Directive, NginxConfig } from './nginx-parse.ts';
import type { OAuth2ProxyConfig } from './oauth2-proxy.ts';
import {
  applyCommon as applyCommonIn,
  childScope,
  emptyScope,
  LIST_DIRECTIVES,
  type Level,
  type Scope,
} from './scope.ts';
import { renderToml, formatSource, type Entry, type Source, type Table, type TomlValue } from './toml-writer.ts';
import { readUpstream } from './upstream-groups.ts';

export type { ImportResult, TranslateOptions } from './context.ts';

export function translate(nginx: NginxConfig, cfgs: OAuth2ProxyConfig[], options: TranslateOptions): ImportResult {
  const ctx = newContext(cfgs, options);
  const { refused, implied } = ctx;
  const refuse = (d: Directive, why: string, name = d.name) => refuseIn(ctx, d, why, name);
  const imply = (d: Directive, why: string) => implyIn(ctx, d, why);
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

  // Port-80 servers that only send everyone to HTTPS, and default servers that only refuse, need no site.
  const isHttpsRedirect = (d: Directive): boolean =>
    d.name === 'return' &&
    ['301', '302', '307', '308'].includes(d.args[0]!) &&
    /^https:\/\/(\$host|\$server_name|\$http_host|[a-z0-9.-]+)(:\d+)?\$request_uri$/i.test(d.args[1] ?? '');

  const siteNames = new Map<string, Directive>();
  for (const server of servers) translateServer(server);

  function listenOf(d: Directive): { address?: string; ssl: boolean; defaultServer: boolean } {
    const [spec, ...params] = d.args;
    let address: string | undefined;
    if (spec === undefined || spec.startsWith('unix:')) refuse(d, 'listen on a unix socket has no equivalent');
    else if (/^\d+$/.test(spec)) address = `0.0.0.0:${spec}`;
    else if (/^\*:\d+$/.test(spec)) address = `0.0.0.0:${spec.slice(2)}`;
    else if (/^(\[[0-9a-f:.]+\]|[0-9.]+|localhost):\d+$/i.test(spec)) address = spec;
    else if (/^(\[[0-9a-f:.]+\]|[0-9.]+)$/i.test(spec)) address = `${spec}:80`;
    else refuse(d, `"${spec}" is not an address Gatehouse listens on (IP:port)`);
    let ssl = false;
    let defaultServer = false;
    for (const p of params) {
      if (p === 'ssl') ssl = true;
      else if (p === 'default_server' || p === 'default') defaultServer = true;
      else if (
        p === 'http2' ||
        p === 'reuseport' ||
        p.startsWith('backlog=') ||
        p.startsWith('ipv6only=') ||
        p === 'deferred' ||
        p.startsWith('so_keepalive=') ||
        p.startsWith('fastopen=')
      )
        continue;
      else if (p === 'proxy_protocol') ctx.proxyProtocol ??= d;
      else if (p === 'quic' || p === 'http3') refuse(d, 'no HTTP/3 (QUIC)');
      else refuse(d, `listen parameter "${p}" has no equivalent`);
    }
    return { address, ssl, defaultServer };
  }

  function translateServer(server: Directive): void {
    const s = childScope(httpScope);
    const locations: Directive[] = [];
    const listens: Directive[] = [];
    const names: { name: string; d: Directive }[] = [];
    const rest: Directive[] = [];
    let cert: Directive | undefined = httpScope.knobs.get('ssl_certificate')?.d;
    let key: Directive | undefined = httpScope.knobs.get('ssl_certificate_key')?.d;
    const site: SiteOut = {
      names: [],
      fileName: '',
      top: [],
      tls: [],
      upstreams: new Map(),
      routes: [],
      auth: [],
      notes: [],
      authVars: new Map(),
    };
    const serverLevelLists = new Set<string>();
    const ownTls = new Map<string, Directive>();
    for (const d of server.block ?? []) {
      if (d.name === 'location') locations.push(d);
      else if (d.name === 'listen') listens.push(d);
      else if (d.name === 'server_name') for (const name of d.args) names.push({ name, d });
      else if ((d.name === 'ssl_certificate' || d.name === 'ssl_certificate_key') && ownTls.has(d.name))
        refuse(d, 'one certificate and key per site (nginx can serve an RSA and an ECDSA one side by side)');
      else if (d.name === 'ssl_certificate') ownTls.set(d.name, (cert = d));
      else if (d.name === 'ssl_certificate_key') ownTls.set(d.name, (key = d));
      else if (d.name === 'auth_request_set') {
        const [name, value] = d.args;
        if (name && value) site.authVars.set(name, value.toLowerCase());
        note(site.notes, d, 'Gatehouse sets the identity headers itself');
      } else if (d.name in LIST_DIRECTIVES && !serverLevelLists.has(d.name)) {
        serverLevelLists.add(d.name);
        s[LIST_DIRECTIVES[d.name as keyof typeof LIST_DIRECTIVES]] = [d];
      } else if (d.name in LIST_DIRECTIVES) s[LIST_DIRECTIVES[d.name as keyof typeof LIST_DIRECTIVES]].push(d);
      else if (d.name === 'allow' || d.name === 'deny') {
        if (!serverLevelLists.has('access')) s.access = [];
        serverLevelLists.add('access');
        s.access.push(d);
      } else if (!applyCommon(d, s, 'server')) rest.push(d);
      if (d.name === 'auth_request' || (d.name === 'error_page' && d.args.includes('401')))
        note(
          site.notes,
          d,
          d.name === 'auth_request' ? 'the site’s [auth]' : 'anonymous page loads get the login (302), API calls 401',
        );
    }
    const parsedListens = listens.map((d) => ({ d, ...listenOf(d) }));
    const ssl = parsedListens.filter((l) => l.ssl);
    const plain = parsedListens.filter((l) => !l.ssl);
    if (listens.length === 0) plain.push({ d: server, address: '0.0.0.0:80', ssl: false, defaultServer: false });

    const realNames = names.filter((n) => n.name !== '_' && n.name !== '' && n.name !== 'localhost');
    // A server that only refuses or redirects every request to HTTPS needs no site.
    const contentDirectives = [...rest, ...locations];
    const onlyRedirects = (list: Directive[]): boolean =>
      list.every(
        (d) =>
          isHttpsRedirect(d) ||
          (d.name === 'return' && ['404', '444'].includes(d.args[0]!)) ||
          (d.name === 'if' && /^\(\$(host|server_name)$/.test(d.args[0] ?? '') && onlyRedirects(d.block ?? [])) ||
          (d.name === 'location' && d.args.at(-1) === '/' && onlyRedirects(d.block ?? [])) ||
          (d.name === 'location' && d.args.at(-1) === '/.well-known/acme-challenge/'),
      );
    if (ssl.length === 0) {
      if (!onlyRedirects(contentDirectives)) {
        refuse(
          server,
          'a plain-HTTP server with content: Gatehouse serves sites over HTTPS and redirects plain HTTP there',
        );
        return;
      }
      for (const l of plain) if (l.address) httpListen.push({ value: l.address, from: src(l.d) });
      for (const d of contentDirectives)
        note(
          global.notes,
          d,
          d.name === 'location' && d.args.at(-1) === '/.well-known/acme-challenge/'
            ? 'ACME HTTP-01 challenges are answered on [http] listen'
            : 'the [http] listeners redirect every configured name to HTTPS (308), unknown names get 404',
        );
      for (const n of names) imply(n.d, 'names of a redirecting server');
      return;
    }
    for (const l of ssl) if (l.address) httpsListen.push({ value: l.address, from: src(l.d) });
    if (plain.length > 0 && listens.length > 0)
      for (const l of plain) {
        // Reported (the content is no longer served over plain HTTP), and the address still redirects to HTTPS.
        if (l.address) httpListen.push({ value: l.address, from: src(l.d) });
        refuse(
          l.d,
          'plain HTTP on a server with content: Gatehouse redirects plain HTTP to HTTPS ([http] listen) instead',
        );
      }
    if (realNames.length === 0) {
      if (onlyRedirects(contentDirectives) || contentDirectives.every((d) => d.name === 'return'))
        for (const d of [...contentDirectives, ...names.map((n) => n.d)])
          note(global.notes, d, 'without default_site, a handshake for a name no site has is refused');
      else refuse(server, 'a server without a server_name: name the site (default_site picks the default)');
      return;
    }
    // server_name: exact and *.wildcard names; ".example.com" is both; regular expressions are refused.
    const serverNames: string[] = [];
    for (const { name, d } of realNames) {
      if (name.startsWith('~')) refuse(d, `"${name}": no regular-expression server names`, 'server_name');
      else if (name.startsWith('.')) serverNames.push(name.slice(1), `*${name}`);
      else if (name.endsWith('.*')) refuse(d, `"${name}": no trailing wildcards`, 'server_name');
      else serverNames.push(name.toLowerCase());
    }
    const taken = serverNames.find((n) => siteNames.has(n));
    if (taken) {
      refuse(
        server,
        `"${taken}" is already a site (${formatSource(src(siteNames.get(taken)!))}): nginx ignores this server for it`,
      );
      return;
    }
    for (const n of serverNames) siteNames.set(n, server);
    site.names = serverNames;
    site.top.push({
      kind: 'key',
      key: 'server_names',
      value: serverNames,
      from: dedupe(realNames.map((n) => src(n.d))),
    });
    if (ssl.some((l) => l.defaultServer))
      global.https.push({
        kind: 'key',
        key: 'default_site',
        value: serverNames[0]!,
        from: [src(ssl.find((l) => l.defaultServer)!.d)],
      });

    // TLS: certbot's live folder → acme = true (Gatehouse takes over renewal; certbot's webroot would no longer be reached).
    if (!cert || !key) {
      refuse(server, 'listen … ssl without ssl_certificate and ssl_certificate_key');
      return;
    }
    const certPath = path.resolve(options.prefix, cert.args[0]!);
    const keyPath = path.resolve(options.prefix, key.args[0]!);
    if (certPath.startsWith('/etc/letsencrypt/live/')) {
      ctx.usesAcme ??= cert;
      site.tls.push(
        {
          kind: 'comment',
          text: `${formatSource(src(cert))}: certbot's certificate; Gatehouse obtains and renews it itself (ACME HTTP-01)`,
        },
        {
          kind: 'comment',
          text: `to keep certbot's files instead: cert = "${certPath}", key = "${keyPath}" (and renew with a reload)`,
        },
        { kind: 'key', key: 'acme', value: true, from: [src(cert), src(key)] },
      );
    } else {
      site.tls.push({ kind: 'key', key: 'cert', value: certPath, from: [src(cert)] });
      site.tls.push({ kind: 'key', key: 'key', value: keyPath, from: [src(key)] });
      if (/\/(fullchain|cert)\.pem$/.test(certPath))
        site.tls.push({
          kind: 'comment',
          text: 'or let Gatehouse obtain and renew it (ACME HTTP-01): acme = true instead of cert and key',
        });
    }

    for (const d of rest) {
      if (d.name === 'return' && locations.length === 0 && ['301', '302', '307', '308'].includes(d.args[0]!)) {
        site.routes.push([
          { kind: 'key', key: 'path', value: '/', from: [src(d)] },
          { kind: 'key', key: 'redirect', value: d.args[1]!, from: [src(d)] },
          { kind: 'key', key: 'status', value: Number(d.args[0]), from: [src(d)] },
        ]);
      } else if (d.name === 'http2') note(site.notes, d, IMPLIED.http2!);
      else if (IMPLIED[d.name]) note(site.notes, d, IMPLIED[d.name]!);
      else refuse(d, REFUSED[d.name] ?? 'no equivalent in Gatehouse');
    }

    let fileName = serverNames[0]!.replace(/^\*\./, '_wildcard.');
    while (sites.some((x) => x.fileName === fileName)) fileName += '_';
    site.fileName = fileName;
    const secretsBefore = secretFiles.length;
    translateLocations(ctx, server, s, locations, site);
    if (site.routes.length === 0) {
      if (!site.leftOut) refuse(server, 'no location Gatehouse can serve: a site needs at least one route');
      for (const n of serverNames) siteNames.delete(n);
      secretFiles.splice(secretsBefore);
      return;
    }
    sites.push(site);
  }

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

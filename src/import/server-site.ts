// A server block → a site file: listen → [https]/[http] listen, server_name → server_names, ssl_certificate → [tls]
// (certbot's → acme = true); its locations become routes (locations.ts). Port-80 servers that only send everyone to
// HTTPS, and default servers that only refuse, need no site.
import path from 'node:path';
import { dedupe, imply, note, refuse, src, type SiteOut, type TranslateContext } from './context.ts';
import { translateLocations } from './locations.ts';
import { IMPLIED, REFUSED } from './nginx-directives.ts';
import type { Directive } from './nginx-parse.ts';
import { applyCommon, childScope, listOf, type Scope } from './scope.ts';
import { formatSource } from './toml-writer.ts';

interface ServerBlock {
  locations: Directive[];
  listens: Directive[];
  names: { name: string; d: Directive }[];
  /** Server-level directives that are neither listeners, names, TLS nor inherited settings. */
  rest: Directive[];
  cert?: Directive;
  key?: Directive;
}

interface ParsedListen {
  d: Directive;
  address?: string;
  ssl: boolean;
  defaultServer: boolean;
}

export function translateServer(ctx: TranslateContext, httpScope: Scope, server: Directive): void {
  const s = childScope(httpScope);
  const site = newSite();
  const block = readServerBlock(ctx, server, httpScope, s, site);
  const { locations, listens, names, rest } = block;
  const parsedListens = listens.map((d): ParsedListen => ({ d, ...listenOf(ctx, d) }));
  const ssl = parsedListens.filter((l) => l.ssl);
  const plain = parsedListens.filter((l) => !l.ssl);
  if (listens.length === 0) plain.push({ d: server, address: '0.0.0.0:80', ssl: false, defaultServer: false });

  const realNames = names.filter((n) => n.name !== '_' && n.name !== '' && n.name !== 'localhost');
  const contentDirectives = [...rest, ...locations];
  if (ssl.length === 0) return translatePlainServer(ctx, server, plain, contentDirectives, names);
  for (const l of ssl) if (l.address) ctx.httpsListen.push({ value: l.address, from: src(l.d) });
  if (plain.length > 0 && listens.length > 0)
    for (const l of plain) {
      // Reported (the content is no longer served over plain HTTP), and the address still redirects to HTTPS.
      if (l.address) ctx.httpListen.push({ value: l.address, from: src(l.d) });
      refuse(
        ctx,
        l.d,
        'plain HTTP on a server with content: Gatehouse redirects plain HTTP to HTTPS ([http] listen) instead',
      );
    }
  if (realNames.length === 0) {
    if (onlyRedirects(contentDirectives) || contentDirectives.every((d) => d.name === 'return'))
      for (const d of [...contentDirectives, ...names.map((n) => n.d)])
        note(ctx, ctx.global.notes, d, 'without default_site, a handshake for a name no site has is refused');
    else refuse(ctx, server, 'a server without a server_name: name the site (default_site picks the default)');
    return;
  }
  const serverNames = claimServerNames(ctx, server, realNames);
  if (!serverNames) return;
  site.names = serverNames;
  site.top.push({ kind: 'key', key: 'server_names', value: serverNames, from: dedupe(realNames.map((n) => src(n.d))) });
  const defaultListen = ssl.find((l) => l.defaultServer);
  if (defaultListen)
    ctx.global.https.push({ kind: 'key', key: 'default_site', value: serverNames[0]!, from: [src(defaultListen.d)] });
  if (!block.cert || !block.key) {
    refuse(ctx, server, 'listen … ssl without ssl_certificate and ssl_certificate_key');
    return;
  }
  translateCertificate(ctx, site, block.cert, block.key);
  translateServerLevel(ctx, site, rest, locations.length > 0);
  addSite(ctx, server, s, locations, site);
}

function newSite(): SiteOut {
  return {
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
}

/** Sorts the server's directives; what it sets for its locations goes into its scope s. */
function readServerBlock(ctx: TranslateContext, server: Directive, httpScope: Scope, s: Scope, site: SiteOut) {
  const block: ServerBlock = {
    locations: [],
    listens: [],
    names: [],
    rest: [],
    cert: httpScope.knobs.get('ssl_certificate')?.d,
    key: httpScope.knobs.get('ssl_certificate_key')?.d,
  };
  const serverLevelLists = new Set<string>();
  const ownTls = new Map<string, Directive>();
  for (const d of server.block ?? []) {
    const list = listOf(d.name);
    if (d.name === 'location') block.locations.push(d);
    else if (d.name === 'listen') block.listens.push(d);
    else if (d.name === 'server_name') for (const name of d.args) block.names.push({ name, d });
    else if ((d.name === 'ssl_certificate' || d.name === 'ssl_certificate_key') && ownTls.has(d.name))
      refuse(ctx, d, 'one certificate and key per site (nginx can serve an RSA and an ECDSA one side by side)');
    else if (d.name === 'ssl_certificate') ownTls.set(d.name, (block.cert = d));
    else if (d.name === 'ssl_certificate_key') ownTls.set(d.name, (block.key = d));
    else if (d.name === 'auth_request_set') {
      const [name, value] = d.args;
      if (name && value) site.authVars.set(name, value.toLowerCase());
      note(ctx, site.notes, d, 'Gatehouse sets the identity headers itself');
    } else if (list && !serverLevelLists.has(d.name)) {
      serverLevelLists.add(d.name);
      s[list] = [d];
    } else if (list) s[list].push(d);
    else if (d.name === 'allow' || d.name === 'deny') {
      if (!serverLevelLists.has('access')) s.access = [];
      serverLevelLists.add('access');
      s.access.push(d);
    } else if (!applyCommon(ctx, d, s, 'server')) block.rest.push(d);
    if (d.name === 'auth_request' || (d.name === 'error_page' && d.args.includes('401')))
      note(
        ctx,
        site.notes,
        d,
        d.name === 'auth_request' ? 'the site’s [auth]' : 'anonymous page loads get the login (302), API calls 401',
      );
  }
  return block;
}

function listenOf(ctx: TranslateContext, d: Directive): { address?: string; ssl: boolean; defaultServer: boolean } {
  const [spec, ...params] = d.args;
  let address: string | undefined;
  if (spec === undefined || spec.startsWith('unix:')) refuse(ctx, d, 'listen on a unix socket has no equivalent');
  else if (/^\d+$/.test(spec)) address = `0.0.0.0:${spec}`;
  else if (/^\*:\d+$/.test(spec)) address = `0.0.0.0:${spec.slice(2)}`;
  else if (/^(\[[0-9a-f:.]+\]|[0-9.]+|localhost):\d+$/i.test(spec)) address = spec;
  else if (/^(\[[0-9a-f:.]+\]|[0-9.]+)$/i.test(spec)) address = `${spec}:80`;
  else refuse(ctx, d, `"${spec}" is not an address Gatehouse listens on (IP:port)`);
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
    else if (p === 'quic' || p === 'http3') refuse(ctx, d, 'no HTTP/3 (QUIC)');
    else refuse(ctx, d, `listen parameter "${p}" has no equivalent`);
  }
  return { address, ssl, defaultServer };
}

const isHttpsRedirect = (d: Directive): boolean =>
  d.name === 'return' &&
  ['301', '302', '307', '308'].includes(d.args[0]!) &&
  /^https:\/\/(\$host|\$server_name|\$http_host|[a-z0-9.-]+)(:\d+)?\$request_uri$/i.test(d.args[1] ?? '');

/** A server that only refuses or redirects every request to HTTPS needs no site. */
function onlyRedirects(list: Directive[]): boolean {
  return list.every(
    (d) =>
      isHttpsRedirect(d) ||
      (d.name === 'return' && ['404', '444'].includes(d.args[0]!)) ||
      (d.name === 'if' && /^\(\$(host|server_name)$/.test(d.args[0] ?? '') && onlyRedirects(d.block ?? [])) ||
      (d.name === 'location' && d.args.at(-1) === '/' && onlyRedirects(d.block ?? [])) ||
      (d.name === 'location' && d.args.at(-1) === '/.well-known/acme-challenge/'),
  );
}

/** A server without `listen … ssl`: its addresses become [http] listen when it only redirects; else it is refused. */
function translatePlainServer(
  ctx: TranslateContext,
  server: Directive,
  plain: ParsedListen[],
  contentDirectives: Directive[],
  names: { name: string; d: Directive }[],
): void {
  if (!onlyRedirects(contentDirectives)) {
    refuse(
      ctx,
      server,
      'a plain-HTTP server with content: Gatehouse serves sites over HTTPS and redirects plain HTTP there',
    );
    return;
  }
  for (const l of plain) if (l.address) ctx.httpListen.push({ value: l.address, from: src(l.d) });
  for (const d of contentDirectives)
    note(
      ctx,
      ctx.global.notes,
      d,
      d.name === 'location' && d.args.at(-1) === '/.well-known/acme-challenge/'
        ? 'ACME HTTP-01 challenges are answered on [http] listen'
        : 'the [http] listeners redirect every configured name to HTTPS (308), unknown names get 404',
    );
  for (const n of names) imply(ctx, n.d, 'names of a redirecting server');
}

/** server_name: exact and *.wildcard names; ".example.com" is both; regular expressions are refused. */
function claimServerNames(
  ctx: TranslateContext,
  server: Directive,
  realNames: { name: string; d: Directive }[],
): string[] | undefined {
  const serverNames: string[] = [];
  for (const { name, d } of realNames) {
    if (name.startsWith('~')) refuse(ctx, d, `"${name}": no regular-expression server names`, 'server_name');
    else if (name.startsWith('.')) serverNames.push(name.slice(1), `*${name}`);
    else if (name.endsWith('.*')) refuse(ctx, d, `"${name}": no trailing wildcards`, 'server_name');
    else serverNames.push(name.toLowerCase());
  }
  const taken = serverNames.find((n) => ctx.siteNames.has(n));
  if (taken) {
    refuse(
      ctx,
      server,
      `"${taken}" is already a site (${formatSource(src(ctx.siteNames.get(taken)!))}): nginx ignores this server for it`,
    );
    return undefined;
  }
  for (const n of serverNames) ctx.siteNames.set(n, server);
  return serverNames;
}

/** TLS: certbot's live folder → acme = true (Gatehouse takes over renewal; certbot's webroot would no longer be reached). */
function translateCertificate(ctx: TranslateContext, site: SiteOut, cert: Directive, key: Directive): void {
  const certPath = path.resolve(ctx.options.prefix, cert.args[0]!);
  const keyPath = path.resolve(ctx.options.prefix, key.args[0]!);
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
    return;
  }
  site.tls.push({ kind: 'key', key: 'cert', value: certPath, from: [src(cert)] });
  site.tls.push({ kind: 'key', key: 'key', value: keyPath, from: [src(key)] });
  if (/\/(fullchain|cert)\.pem$/.test(certPath))
    site.tls.push({
      kind: 'comment',
      text: 'or let Gatehouse obtain and renew it (ACME HTTP-01): acme = true instead of cert and key',
    });
}

/** The server's other directives: a `return 30x` without locations is a redirect route; the rest is noted or refused. */
function translateServerLevel(ctx: TranslateContext, site: SiteOut, rest: Directive[], hasLocations: boolean): void {
  for (const d of rest) {
    if (d.name === 'return' && !hasLocations && ['301', '302', '307', '308'].includes(d.args[0]!)) {
      site.routes.push([
        { kind: 'key', key: 'path', value: '/', from: [src(d)] },
        { kind: 'key', key: 'redirect', value: d.args[1]!, from: [src(d)] },
        { kind: 'key', key: 'status', value: Number(d.args[0]), from: [src(d)] },
      ]);
    } else if (d.name === 'http2') note(ctx, site.notes, d, IMPLIED.http2!);
    else if (IMPLIED[d.name]) note(ctx, site.notes, d, IMPLIED[d.name]!);
    else refuse(ctx, d, REFUSED[d.name] ?? 'no equivalent in Gatehouse');
  }
}

/** Names the site file, translates the locations, and keeps the site unless it ended up with no route. */
function addSite(ctx: TranslateContext, server: Directive, s: Scope, locations: Directive[], site: SiteOut): void {
  let fileName = site.names[0]!.replace(/^\*\./, '_wildcard.');
  while (ctx.sites.some((x) => x.fileName === fileName)) fileName += '_';
  site.fileName = fileName;
  const secretsBefore = ctx.secretFiles.length;
  translateLocations(ctx, server, s, locations, site);
  if (site.routes.length === 0) {
    if (!site.leftOut) refuse(ctx, server, 'no location Gatehouse can serve: a site needs at least one route');
    for (const n of site.names) ctx.siteNames.delete(n);
    ctx.secretFiles.splice(secretsBefore);
    return;
  }
  ctx.sites.push(site);
}

// nginx's auth_request to oauth2-proxy (+ its /oauth2/ locations + error_page 401 to the sign-in) → the site's
// [auth]: routes without auth_request become skip_auth_routes, routes whose 401 stays a 401 become api_routes. What
// cannot be translated leaves the site out rather than open.
import { translateAuthOptions, proxyPort, redirectHost, type AuthLine, type AuthTranslation } from './auth-options.ts';
import { imply, note, refuse, refuseOnce, src, type SiteOut, type TranslateContext } from './context.ts';
import { matcherRegex, type Matcher } from './location-match.ts';
import { authed, denyOnly, type LocationTree } from './location-tree.ts';
import type { Directive } from './nginx-parse.ts';
import type { OAuth2ProxyConfig } from './oauth2-proxy.ts';
import type { IdentityFlags } from './route-entries.ts';
import { formatSource, type Source } from './toml-writer.ts';

export interface RouteRule {
  value: string;
  from: Source;
}

/** What the routes add to [auth]: the skip and API rules, and the identity the nginx config passed on. */
export interface AuthRules {
  skipRoutes: RouteRule[];
  apiRoutes: RouteRule[];
  flags: IdentityFlags;
}

/**
 * The auth_request target and every /oauth2/ location are oauth2-proxy's: Gatehouse answers /oauth2/* itself.
 * false (reported, the site left out) when a target is not oauth2-proxy's /oauth2/auth.
 */
export function claimAuthTargets(ctx: TranslateContext, tree: LocationTree, site: SiteOut): boolean {
  const authTargets = new Set(
    [...tree.scopes.values()]
      .map((x) => x.auth)
      .filter((a) => a && a.args[0] !== 'off')
      .map((a) => a!.args[0]!),
  );
  for (const target of authTargets) {
    const l = tree.all.find((x) => tree.matchers.get(x)?.kind !== 'regex' && tree.matchers.get(x)?.path === target);
    const pass = l?.block?.find((d) => d.name === 'proxy_pass');
    const isOAuth2 = target.startsWith('/oauth2/') || (pass && /\/oauth2\/auth$/.test(pass.args[0] ?? ''));
    if (!l || !isOAuth2) {
      for (const xs of tree.scopes.values())
        if (xs.auth?.args[0] === target)
          refuse(
            ctx,
            xs.auth,
            `auth_request to ${target}: only oauth2-proxy's /oauth2/auth is translated; the site is left out (it would be open)`,
          );
      site.routes = [];
      site.leftOut = true;
      return false;
    }
    tree.oauth2.add(l);
    if (pass) tree.proxyAddress ??= pass.args[0];
  }
  for (const l of tree.oauth2) {
    site.notes.push({
      kind: 'comment',
      text: `${formatSource(src(l))}: location ${l.args.join(' ')}: oauth2-proxy's endpoint; Gatehouse answers /oauth2/* itself ([auth])`,
    });
    imply(ctx, l, 'oauth2-proxy endpoint: answered by Gatehouse ([auth])');
  }
  return true;
}

/** A route behind auth_request: an API route when its 401 stays a 401; refused when the 401 goes elsewhere. */
export function addApiRoute(ctx: TranslateContext, tree: LocationTree, l: Directive, rules: AuthRules): void {
  const ls = tree.scopes.get(l)!;
  const login = loginErrorPage(ctx, ls.errorPages, tree.named);
  if (login === undefined) {
    for (const d of ls.errorPages)
      refuseOnce(ctx, d, 'error_page for 401 to something other than oauth2-proxy’s sign-in');
  } else if (!login)
    rules.apiRoutes.push({ value: matcherRegex(tree.matchers.get(l)!), from: src(ls.errorPages[0] ?? ls.auth!) });
}

/**
 * What an anonymous request gets where auth_request answers 401: true = the login (error_page 401 to oauth2-proxy's
 * sign_in or start, directly or through a named location that redirects there), false = the 401 itself (no
 * error_page for 401, or `=401`): an API route; undefined = something else, refused.
 */
function loginErrorPage(ctx: TranslateContext, pages: Directive[], named: Map<string, Directive>): boolean | undefined {
  let login: boolean | undefined = false;
  for (const d of pages) {
    const codes = d.args.filter((a) => /^\d{3}$/.test(a));
    if (!codes.includes('401')) {
      refuseOnce(ctx, d, 'error pages are Gatehouse’s own (HTML, or JSON when asked)');
      continue;
    }
    const change = d.args.find((a) => a.startsWith('='));
    const target = d.args.at(-1) ?? '';
    const redirectsToLogin = (url: string) => /\/oauth2\/(sign_in|start)\b/.test(url);
    if (change === '=401') login = false;
    else if (redirectsToLogin(target)) login = true;
    else if (target.startsWith('@')) {
      const ret = named.get(target)?.block?.find((x) => x.name === 'return');
      login = ret && /^30[1278]$/.test(ret.args[0] ?? '') && redirectsToLogin(ret.args[1] ?? '') ? true : undefined;
    } else login = undefined;
    if (codes.length > 1) refuseOnce(ctx, d, 'error pages other than 401 are Gatehouse’s own');
  }
  return login;
}

/** A named location is read only as the login redirect of an error_page. */
export function checkNamedLocations(ctx: TranslateContext, tree: LocationTree, site: SiteOut): void {
  for (const n of tree.named.values())
    if (![...tree.scopes.values()].some((x) => x.errorPages.some((e) => e.args.at(-1) === n.args[0])))
      refuse(ctx, n, 'a named location no error_page uses');
    else if ((n.block ?? []).some((x) => x.name === 'return' && /\/oauth2\/(sign_in|start)\b/.test(x.args[1] ?? '')))
      note(ctx, site.notes, n, 'the login redirect of an error_page: Gatehouse redirects to the login itself');
}

/**
 * The skip_auth_routes rule of a route without auth_request. Fail closed: a longer location inside this one that
 * needs the login, or any regex location that does (nginx tries regexes after prefixes), is excluded from it.
 */
export function skipRegex(tree: LocationTree, routeLocations: Directive[], m: Matcher, l: Directive): string {
  const inner = routeLocations
    .filter((x) => x !== l && authed(tree, x) && !denyOnly(x))
    .map((x) => tree.matchers.get(x)!)
    .filter((x) => x.kind === 'regex' || (m.kind !== 'regex' && x.path.startsWith(m.path) && x.path !== m.path))
    .map((x) =>
      x.kind === 'regex'
        ? x.path.startsWith('^')
          ? matcherRegex(x)
          : `[^]*?${matcherRegex(x)}`
        : matcherRegex(x).slice(1),
    );
  const base = matcherRegex(m);
  if (inner.length === 0) return base;
  return `^(?!${inner.join('|')})${base.startsWith('^') ? base.slice(1) : `[^]*?${base}`}`;
}

/** [auth] from the oauth2-proxy configuration this server sends auth_request to; the site is left out without one. */
export function translateSiteAuth(
  ctx: TranslateContext,
  server: Directive,
  site: SiteOut,
  proxyAddress: string | undefined,
  rules: AuthRules,
): void {
  const cfg = oauth2ProxyOf(ctx.cfgs, site, proxyAddress);
  if (!cfg) {
    refuse(
      ctx,
      server,
      `auth_request to oauth2-proxy${proxyAddress ? ` at ${proxyAddress}` : ''} but no oauth2-proxy .cfg (or OAUTH2_PROXY_* variables) for it: the site is left out (it would be open)`,
      'server',
    );
    site.routes = [];
    site.leftOut = true;
    return;
  }
  ctx.usedCfgs.add(cfg);
  const lines = authLines(ctx, site, cfg);
  for (const [flag, from] of Object.entries(rules.flags))
    if (from && !lines.has(flag))
      lines.set(flag, { key: flag, value: true, from, note: 'the nginx config passed it on (auth_request_set)' });
  mergeRouteRules(lines, 'skip_auth_routes', rules.skipRoutes);
  mergeRouteRules(lines, 'api_routes', rules.apiRoutes);
  const order = ['provider', 'oidc_issuer_url', 'client_id', 'client_secret', 'redirect_url', 'cookie_secret'];
  const keys = [...order.filter((k) => lines.has(k)), ...[...lines.keys()].filter((k) => !order.includes(k))];
  for (const k of keys) {
    const l = lines.get(k)!;
    site.auth.push({ kind: 'key', key: l.key, value: l.value, from: [l.from], note: l.note });
  }
}

/** The .cfg whose redirect_url names the site, else the one listening where auth_request goes, else the only one. */
function oauth2ProxyOf(
  cfgs: OAuth2ProxyConfig[],
  site: SiteOut,
  proxyAddress: string | undefined,
): OAuth2ProxyConfig | undefined {
  const port = proxyAddress && /:(\d+)/.exec(proxyAddress)?.[1];
  return (
    cfgs.find((c) => redirectHost(c) !== undefined && site.names.includes(redirectHost(c)!)) ??
    (port ? cfgs.find((c) => proxyPort(c) === port) : undefined) ??
    (cfgs.length === 1 ? cfgs[0] : undefined)
  );
}

/** The .cfg's options as [auth] lines (secrets moved to files), its findings, and its gatehouse.toml settings. */
function authLines(ctx: TranslateContext, site: SiteOut, cfg: OAuth2ProxyConfig): Map<string, AuthLine> {
  const t = translateAuthOptions(cfg);
  ctx.refused.push(...t.refused);
  ctx.implied.push(...t.implied);
  for (const f of t.implied) site.notes.push({ kind: 'comment', text: `${formatSource(f.from)}: ${f.name}: ${f.why}` });
  for (const g of t.global) {
    const [table, key] = g.key.split('.') as [keyof TranslateContext['global'], string];
    if (!ctx.global[table].some((e) => e.kind === 'key' && e.key === key))
      ctx.global[table].push({ kind: 'key', key, value: g.value, from: [g.from] });
  }
  mergeStore(ctx, cfg, t);
  const lines = new Map(t.lines.map((l) => [l.key, l] as const));
  for (const [key, secret] of t.secrets) {
    const file = `secrets/${site.fileName}.${key}`;
    ctx.secretFiles.push({ name: file, text: `${secret.value}\n`, mode: 0o600 });
    lines.set(key, { key, value: `\${file:${file}}`, from: secret.from, note: 'the value is in that file (0600)' });
  }
  return lines;
}

/** The first .cfg with Redis settings makes [store]; another with different ones is refused: the store is
 *  process-wide, every site's sessions are in the same one. */
function mergeStore(ctx: TranslateContext, cfg: OAuth2ProxyConfig, t: AuthTranslation): void {
  if (t.store.length === 0) return;
  const settings = (entries: { key: string; value: unknown }[], password?: { value: string }) =>
    JSON.stringify([entries.map((e) => [e.key, e.value]), password?.value]);
  if (!ctx.storeCfg) {
    ctx.storeCfg = cfg;
    ctx.global.store.push(...t.store.map((e) => ({ kind: 'key' as const, ...e })));
    ctx.storePassword = t.storePassword;
    return;
  }
  if (ctx.storeCfg === cfg) return;
  const had = ctx.global.store.filter((e) => e.kind === 'key');
  if (settings(had, ctx.storePassword) !== settings(t.store, t.storePassword))
    ctx.refused.push({
      from: t.store[0]!.from[0]!,
      name: 'session_store_type',
      why: `the store is process-wide and ${formatSource((had[0] as { from: Source[] }).from[0]!)} set other Redis settings: one [store] serves every site`,
    });
}

/** The .cfg's skip_auth_routes / api_routes, then the nginx config's, in one line. */
function mergeRouteRules(lines: Map<string, AuthLine>, key: string, extra: RouteRule[]): void {
  const had = lines.get(key);
  const values = [...((had?.value as string[] | undefined) ?? []), ...extra.map((e) => e.value)];
  const nginxLines = (had ? extra : extra.slice(1)).map((e) => formatSource(e.from));
  const note = nginxLines.length > 0 ? `and ${nginxLines.join(', ')}` : had?.note;
  if (values.length > 0) lines.set(key, { key, value: values, from: had ? had.from : extra[0]!.from, note });
}

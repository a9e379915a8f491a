// One location → the lines of one [[routes]]: its action (proxy_pass → upstream + rewrite_prefix, return → redirect
// or status, root → files), the knobs it inherits (timeouts, body size, buffering), proxy_set_header →
// request_headers, and its own add_header / allow / deny / limit_req.
import path from 'node:path';
import { imply, note, refuse, src, type SiteOut, type TranslateContext } from './context.ts';
import { HEADER_VARIABLES, IMPLIED, impliedHeader, REFUSED, ROUTE_KNOBS } from './nginx-directives.ts';
import type { Directive } from './nginx-parse.ts';
import { accessKnobs } from './route-knobs.ts';
import { listOf, type Scope } from './scope.ts';
import type { Entry, Source } from './toml-writer.ts';
import { useUpstreamGroup } from './upstream-groups.ts';

/** The [auth] flags a route's proxy_set_header of an auth_request_set variable stands for. */
export interface IdentityFlags {
  pass_authorization_header?: Source;
  pass_access_token?: Source;
}

/** The route's lines; undefined when its action cannot be translated (refused). */
export function routeEntries(
  ctx: TranslateContext,
  l: Directive,
  ls: Scope,
  site: SiteOut,
  routePath: string,
  flags: IdentityFlags,
): Entry[] | undefined {
  const e: Entry[] = [{ kind: 'key', key: 'path', value: routePath, from: [src(l)] }];
  const { actions, authVars, healthCheck } = readRouteBlock(ctx, l, site, e);
  if (actions.length > 1) {
    refuse(ctx, actions[1]!, 'a location with several actions');
    return undefined;
  }
  const action = actions[0];
  if (!actionEntries(ctx, l, ls, site, e, action, routePath, healthCheck)) return undefined;
  const own = (d: Directive) => (l.block ?? []).includes(d);
  if (action?.name === 'proxy_pass' && ls.root && own(ls.root)) note(ctx, e, ls.root, 'not used beside proxy_pass');
  if (action?.name === 'proxy_pass' && ls.index && own(ls.index)) note(ctx, e, ls.index, 'not used beside proxy_pass');
  for (const [key, k] of ls.knobs)
    if (k.level !== 'http') e.push({ kind: 'key', key, value: k.value, from: [src(k.d)] });
  requestHeaders(ctx, l, ls, site, e, authVars, flags);
  // Only the location's own add_header / allow / limit_req: the server's are site settings.
  e.push(...accessKnobs(ctx, ls.addHeaders.filter(own), ls.access.filter(own), ls.limitReq.filter(own)));
  return e;
}

/** The location's directives: its actions, auth_request_set variables and health_check; the rest noted or refused. */
function readRouteBlock(ctx: TranslateContext, l: Directive, site: SiteOut, e: Entry[]) {
  const actions: Directive[] = [];
  const authVars = new Map(site.authVars);
  let healthCheck: Directive | undefined;
  for (const d of l.block ?? []) {
    if (d.name === 'auth_request_set') {
      const [name, value] = d.args;
      if (name && value) authVars.set(name, value.toLowerCase());
      note(
        ctx,
        e,
        d,
        'Gatehouse sets the identity headers itself (set_xauthrequest, pass_user_headers, pass_access_token, pass_authorization_header)',
      );
    } else if (d.name === 'proxy_pass' || d.name === 'return') actions.push(d);
    else if (d.name === 'health_check') healthCheck = d;
    else noteRouteDirective(ctx, d, e);
  }
  return { actions, authVars, healthCheck };
}

/** Any other directive of a location: read elsewhere (scope, nested location), implied, or refused. */
function noteRouteDirective(ctx: TranslateContext, d: Directive, e: Entry[]): void {
  if (d.name === 'auth_request')
    note(ctx, e, d, d.args[0] === 'off' ? 'skip_auth_routes in [auth]' : 'the site’s [auth] covers this route');
  else if (d.name === 'error_page' && d.args.includes('401'))
    note(
      ctx,
      e,
      d,
      d.args.includes('=401')
        ? 'an API route: anonymous requests get 401, never the login ([auth] api_routes)'
        : 'anonymous page loads get the login (302), API calls 401',
    );
  else if (ROUTE_KNOBS[d.name] || listOf(d.name) || ['root', 'index', 'allow', 'deny'].includes(d.name)) return;
  else if (d.name === 'location')
    return; // its own route, walked with this one's settings
  else if (d.name === 'proxy_pass_request_body' || (d.name === 'proxy_redirect' && d.args[0] === 'off'))
    note(
      ctx,
      e,
      d,
      d.name === 'proxy_redirect' ? 'upstream Location headers are passed as they are' : 'request bodies are passed',
    );
  else if (d.name === 'if' && /\$auth_cookie/.test(d.args.join(' ')))
    note(ctx, e, d, 'the session cookie is Gatehouse’s own');
  else if (d.name === 'add_header') return;
  else if (IMPLIED[d.name]) note(ctx, e, d, IMPLIED[d.name]!);
  else refuse(ctx, d, REFUSED[d.name] ?? 'no equivalent in Gatehouse');
}

/** proxy_pass, return, or else root: the route's action lines; false when refused. */
function actionEntries(
  ctx: TranslateContext,
  l: Directive,
  ls: Scope,
  site: SiteOut,
  e: Entry[],
  action: Directive | undefined,
  routePath: string,
  healthCheck: Directive | undefined,
): boolean {
  if (action?.name === 'proxy_pass') return proxyPassEntries(ctx, site, e, action, routePath, healthCheck);
  if (action?.name === 'return') return returnEntries(ctx, e, action);
  if (ls.root) {
    e.push({
      kind: 'key',
      key: 'root',
      value: path.resolve(ctx.options.prefix, ls.root.args[0]!),
      from: [src(ls.root)],
    });
    if (ls.index) e.push({ kind: 'key', key: 'index', value: ls.index.args, from: [src(ls.index)] });
    return true;
  }
  refuse(ctx, l, 'no proxy_pass, return or root: nginx would serve files from its default root', 'location');
  return false;
}

/** proxy_pass URL → upstream (an upstream {} group by name, else the URL) and rewrite_prefix for a path. */
function proxyPassEntries(
  ctx: TranslateContext,
  site: SiteOut,
  e: Entry[],
  action: Directive,
  routePath: string,
  healthCheck: Directive | undefined,
): boolean {
  const target = action.args[0] ?? '';
  const url = /^(https?):\/\/([^/]+)(\/.*)?$/.exec(target);
  if (!url || target.includes('$') || url[2]!.startsWith('unix:')) {
    refuse(
      ctx,
      action,
      `proxy_pass ${target}: upstreams are http:// or https:// with a host (no variables, no unix sockets)`,
    );
    return false;
  }
  const [, scheme, host, uri] = url;
  if (ctx.upstreamBlocks.has(host!)) {
    useUpstreamGroup(ctx, site, host!, scheme!, healthCheck);
    e.push({ kind: 'key', key: 'upstream', value: host!, from: [src(action)] });
  } else {
    e.push({ kind: 'key', key: 'upstream', value: `${scheme}://${host}`, from: [src(action)] });
    if (healthCheck)
      refuse(ctx, healthCheck, 'active health checks are per upstream group: proxy_pass to an upstream {} block');
  }
  if (uri !== undefined && uri !== routePath)
    e.push({
      kind: 'key',
      key: 'rewrite_prefix',
      value: uri,
      from: [src(action)],
      note: `${routePath} is replaced by ${uri} for the upstream`,
    });
  return true;
}

/** return 30x URL → redirect + status; return CODE → a status route; a body or 444 is refused. */
function returnEntries(ctx: TranslateContext, e: Entry[], action: Directive): boolean {
  const [code, url] = action.args;
  if (['301', '302', '307', '308'].includes(code!) && url)
    e.push(
      { kind: 'key', key: 'redirect', value: url, from: [src(action)] },
      { kind: 'key', key: 'status', value: Number(code), from: [src(action)] },
    );
  else if (/^[2-5]\d\d$/.test(code!) && url === undefined && code !== '444')
    e.push({ kind: 'key', key: 'status', value: Number(code), from: [src(action)] });
  else {
    refuse(ctx, action, 'return with a body or 444: status routes answer with Gatehouse’s page for that status');
    return false;
  }
  return true;
}

/** Request headers: what Gatehouse sets anyway is a comment; identity headers come from [auth]; the rest is request_headers. */
function requestHeaders(
  ctx: TranslateContext,
  l: Directive,
  ls: Scope,
  site: SiteOut,
  e: Entry[],
  authVars: Map<string, string>,
  flags: IdentityFlags,
): void {
  const headers: Record<string, string> = {};
  const headerFrom: Source[] = [];
  for (const d of ls.headers) {
    const [name, value = ''] = d.args;
    if (!name) continue;
    const why = impliedHeader(name, value, site.names);
    const authVar = /^\$([a-z0-9_]+)$/i.exec(value)?.[1];
    const fromAuth = authVar ? authVars.get(`$${authVar}`) : undefined;
    if (why) {
      if ((l.block ?? []).includes(d)) note(ctx, e, d, why);
      else imply(ctx, d, why);
    } else if (fromAuth !== undefined) {
      if (identityHeader(ctx, d, name, fromAuth, flags)) note(ctx, e, d, 'identity headers come from [auth]');
    } else {
      const vars = [...value.matchAll(/\$\{?([a-z0-9_]+)\}?/gi)].map((v) => v[1]!.toLowerCase());
      const unknown = vars.find((v) => !HEADER_VARIABLES.test(v));
      if (unknown)
        refuse(
          ctx,
          d,
          `$${unknown}: request_headers take $remote_addr $host $scheme $request_uri $proxy_add_x_forwarded_for $http_NAME $server_name`,
        );
      else {
        headers[name] = value;
        headerFrom.push(src(d));
      }
    }
  }
  if (Object.keys(headers).length > 0)
    e.push({ kind: 'key', key: 'request_headers', value: headers, from: headerFrom });
}

/** A header set from an auth_request_set variable: the [auth] flag that passes the same; false when refused. */
function identityHeader(
  ctx: TranslateContext,
  d: Directive,
  name: string,
  fromAuth: string,
  flags: IdentityFlags,
): boolean {
  const lower = name.toLowerCase();
  if (lower === 'authorization' && fromAuth === '$upstream_http_authorization')
    flags.pass_authorization_header ??= src(d);
  else if (
    /^x-(auth-request|forwarded)-access-token$/.test(lower) &&
    fromAuth === '$upstream_http_x_auth_request_access_token'
  )
    flags.pass_access_token ??= src(d);
  else if (
    fromAuth === `$upstream_http_${lower.replace(/-/g, '_')}` &&
    /^x-auth-request-(user|email|preferred-username|groups)$/.test(lower)
  )
    imply(ctx, d, 'set_xauthrequest');
  else {
    refuse(
      ctx,
      d,
      `the upstream gets the identity as X-Auth-Request-* / X-Forwarded-* headers ([auth] set_xauthrequest, pass_user_headers), not as ${name}`,
    );
    return false;
  }
  return true;
}

// THE request path, once for every way a request comes: HTTP/1.1 and HTTP/2 requests and HTTP/1.1 WebSocket upgrades
// read top to bottom through the same stages; each one answers or hands on.
//   begin (id; log line + metrics when over) → admit → site by Host = SNI, path, deny rules, route (resolve-target.ts)
//   → /oauth2/* of the site → authenticate (cookie → session → refresh when due) → challenge when anonymous (302
//   navigation / 401 other) → authorize (policy, 403) → act: proxy with identity headers | WebSocket tunnel | serve
//   files | fixed status → finish (one access-log line, the request metrics: http/access-log.ts).
// Two things differ by kind: the action, and where an answer of ours is written: on the HTTP response, or for an
// upgrade as raw HTTP on its socket (no response object owns it), which is then closed.
import type { IncomingMessage } from 'node:http';
import http2 from 'node:http2';
import type { Socket } from 'node:net';
import { PROVIDER_UNAVAILABLE } from '../auth/authenticated.ts';
import { upstreamHeaders } from '../auth/identity-headers.ts';
import { requestOrigin } from '../auth/redirect.ts';
import type { SiteAuth } from '../auth/site-auth.ts';
import { sendOwn } from '../base/own-answer.ts';
import { logUpgradeWhenDone, logWhenDone } from './access-log.ts';
import { forwardHttp } from '../proxy/forward-http.ts';
import { forwardWebSocket, writeRawError } from '../proxy/forward-websocket.ts';
import { serveStatic, type StaticResult } from '../proxy/static-files.ts';
import type { ForwardResult } from '../proxy/forward-http.ts';
import type { Runtime } from './runtime.ts';
import type { Session } from '../session/sessions.ts';
import { StoreUnavailableError } from '../session/store.ts';
import { sendError, statusOf, type ErrorCode } from '../base/errors.ts';
import { forwardingFacts } from './forwarding-facts.ts';
import { beginRequest, type RequestContext } from './request-context.ts';
import { resolveTarget, type Target } from './resolve-target.ts';
import { common, type AnyRequest, type AnyResponse } from '../base/types.ts';
import type { ResponseHeaders, RouteAction } from '../config/model.ts';
import { renderTemplate, type TemplateValues } from '../config/templates.ts';
import { ipAllowed } from '../proxy/ip-rules.ts';
import { rateLimited } from '../proxy/rate-limit.ts';
import { applyRequestHeaders, type ForwardingFacts } from '../proxy/request-headers.ts';

/** Where an upgrade's answer goes: its raw socket. `status` is the answer it got (101 once the tunnel is open). */
export class RawAnswer {
  readonly socket: Socket;
  readonly head: Buffer;
  status: number | undefined;
  constructor(socket: Socket, head: Buffer) {
    this.socket = socket;
    this.head = head;
  }
}

type Answer = AnyResponse | RawAnswer;
type Routed = Extract<Target, { route: unknown }>;

/** Retry-After on a 503 for a provider that cannot be reached right now. */
const RETRY_SOON = { 'retry-after': '5' };

let loginCode:
  | Promise<
      Pick<typeof import('../auth/challenge.ts'), 'sendChallenge'> &
        Pick<typeof import('../auth/routes.ts'), 'handleOAuth2'>
    >
  | undefined;
/** The login's challenge and /oauth2/* endpoints, loaded by the first request that needs them: only a site with
 *  [auth] has one, and a process serving only public sites never loads openid-client (see http/runtime.ts). */
function login() {
  loginCode ??= Promise.all([import('../auth/challenge.ts'), import('../auth/routes.ts')]).then(
    ([{ sendChallenge }, { handleOAuth2 }]) => ({ sendChallenge, handleOAuth2 }),
  );
  return loginCode;
}

export function createRequestHandler(runtime: Runtime): (req: AnyRequest, res: AnyResponse) => void {
  return (req, res) => {
    const ctx = beginRequest(req);
    const handled = run(runtime, ctx, req, res).catch((error: Error) => failed(runtime, ctx, req, res, error));
    logWhenDone(runtime, ctx, req, res, handled);
  };
}

/** WebSocket upgrades (HTTP/1.1): the same stages; the log line is written once the upgrade is answered. */
export function createUpgradeHandler(runtime: Runtime): (req: IncomingMessage, socket: Socket, head: Buffer) => void {
  return (req, socket, head) => {
    const ctx = beginRequest(req);
    const answer = new RawAnswer(socket, head);
    socket.on('error', (error) => runtime.log.debug({ req_id: ctx.id, err: error }, 'websocket client socket error'));
    const handled = run(runtime, ctx, req, answer).catch((error: Error) => failed(runtime, ctx, req, answer, error));
    logUpgradeWhenDone(runtime, ctx, req, answer, handled);
  };
}

async function run(runtime: Runtime, ctx: RequestContext, req: AnyRequest, out: Answer): Promise<void> {
  if (!admit(runtime, ctx, req, out)) return;

  const target = resolveTarget(runtime, req);
  ctx.site = target.site;
  if (target.site && !(out instanceof RawAnswer)) {
    // On every response of the site from here on, our own pages included; an upstream's own HSTS header wins.
    if (target.site.config.hsts) common(out).setHeader('strict-transport-security', target.site.config.hsts);
    // response_headers (nginx add_header … always): on our own answers too; on an upstream's they replace its own.
    addResponseHeaders(out, 'route' in target ? target.route.responseHeaders : target.site.config.responseHeaders);
  }
  if ('error' in target) return refuse(ctx, req, out, target.error, target.cause, target.cause?.message);
  const facts = forwardingFacts(runtime, req, target.host, ctx.id);
  // allow/deny and limit_req by client address: before anything else of the site, /oauth2/* included.
  const { ipRules, rateLimit } = 'oauth2' in target ? target.site.config : target.route;
  if (!ipAllowed(ipRules, facts.clientAddress)) return refuse(ctx, req, out, 'ERR_IP_DENIED');
  const wait = rateLimit ? rateLimited(rateLimit, facts.clientAddress) : 0;
  if (wait > 0) return refuse(ctx, req, out, 'ERR_RATE_LIMITED', undefined, undefined, { 'retry-after': String(wait) });
  if ('oauth2' in target) return await oauth2Endpoint(runtime, ctx, req, out, target);
  ctx.route = target.route;
  ctx.pathname = target.pathname;
  const action = target.route.action;
  // nginx `return 301 URL` answers before access checks and auth_request (its rewrite phase comes first).
  if (action.kind === 'redirect' && !(out instanceof RawAnswer)) return redirect(ctx, req, out, action, target);

  // A public site (no [auth]) does no auth work at all; trusted_ips skip it (no identity headers then).
  const auth = target.site.auth;
  let session: Session | undefined;
  if (auth && !auth.skips(req.method, target.pathname) && !auth.trusts(facts.clientAddress)) {
    const answer = auth.authenticate(req.headers);
    // A cached session answers at once: most requests wait for nothing here.
    const found = answer instanceof Promise ? await answer : answer;
    if (found === PROVIDER_UNAVAILABLE)
      return refuse(ctx, req, out, 'ERR_AUTH_PROVIDER_UNAVAILABLE', undefined, undefined, RETRY_SOON);
    if (!found) return await challenge(auth, ctx, req, out, target);
    session = found;
    if (!authorize(auth, session, ctx, req, out)) return;
  }

  // act: the action of the route, by kind.
  if (out instanceof RawAnswer) return await tunnel(runtime, ctx, req as IncomingMessage, out, target, session, facts);
  if (action.kind === 'status') return statusRoute(ctx, req, out, action.status);
  if (action.kind === 'redirect') return redirect(ctx, req, out, action, target);
  if (action.kind === 'static')
    return served(ctx, req, out, await serveStatic(req, out, action, target.path.normalized));
  const group = target.site.groups.get(action.upstream)!;
  // Every server failed its active health checks: the error page at once, no connection attempted.
  if (target.site.health.get(action.upstream)?.allDown()) return refuse(ctx, req, out, 'ERR_UPSTREAM_DOWN');
  const path = upstreamPath(ctx, target);
  if (path === undefined) return refuse(ctx, req, out, 'ERR_PATH_REFUSED');
  proxied(
    ctx,
    req,
    out,
    action.upstream,
    await forwardHttp(req, out, {
      route: target.route,
      group,
      headers: requestHeaders(req, facts, auth, session, target),
      path,
    }),
  );
}

/** The upstream request's headers: the client's cleaned, ours, identity headers, then the route's request_headers. */
function requestHeaders(
  req: AnyRequest,
  facts: ForwardingFacts,
  auth: SiteAuth | undefined,
  session: Session | undefined,
  target: Routed,
): Record<string, string | string[]> {
  const headers = upstreamHeaders(req.headers, facts, auth, session);
  const rules = target.route.requestHeaders;
  if (rules.length > 0) applyRequestHeaders(headers, rules, variables(req, facts, { ...headers }, target));
  return headers;
}

/**
 * nginx's variables for one request (config/templates.ts lists them). `built` is the request as Gatehouse forwards it
 * before any rule: $http_NAME reads it, so it never yields Gatehouse's cookies or a client's copy of an identity
 * header ($http_x_auth_request_user is the signed-in user), and $proxy_add_x_forwarded_for is Gatehouse's value.
 */
function variables(
  req: AnyRequest,
  facts: ForwardingFacts,
  built: Record<string, string | string[]>,
  target: Routed,
): TemplateValues {
  const forwardedFor = String(built['x-forwarded-for'] ?? facts.clientAddress);
  return {
    variable(name) {
      switch (name) {
        case 'remote_addr':
          return facts.clientAddress;
        case 'host':
          return target.host;
        case 'scheme':
          return facts.proto;
        case 'request_uri':
          return req.url ?? '';
        case 'uri':
          return target.path.normalized;
        case 'proxy_add_x_forwarded_for':
          return forwardedFor;
        case 'server_name':
          return target.site.config.name;
        case 'server_port':
          return String(('stream' in req ? req.stream.session?.socket : req.socket)?.localPort ?? '');
      }
    },
    header(name) {
      const value = built[name];
      return value === undefined ? '' : Array.isArray(value) ? value.join(', ') : value;
    },
  };
}

/**
 * The path the upstream receives: the normalized path the rules matched (normalize-path.ts), never the raw target;
 * with rewrite_prefix, the route's path replaced by it (nginx proxy_pass with a URI part), logged as upstream_path.
 */
function upstreamPath(ctx: RequestContext, target: Routed): string | undefined {
  const { route, path } = target;
  if (route.rewritePrefix === undefined) return path.normalized + path.query;
  // The route's path is matched in decoded form; the normalized path spells it percent-encoded where it must.
  const prefix = [route.path, encodeURI(route.path)].find((p) => path.normalized.startsWith(p));
  // "/app" on the route "/app/" (nginx would redirect to "/app/") is the route's root.
  if (prefix === undefined && `${target.pathname}/` !== route.path) return undefined;
  ctx.upstreamPath = route.rewritePrefix + (prefix ? path.normalized.slice(prefix.length) : '');
  return ctx.upstreamPath + path.query;
}

function addResponseHeaders(res: AnyResponse, headers: ResponseHeaders): void {
  for (const name in headers) if (headers[name] !== '') common(res).setHeader(name, headers[name]!);
}

/** `redirect` routes (nginx `return 301 URL`): a bare answer of ours with Location. */
function redirect(
  ctx: RequestContext,
  req: AnyRequest,
  res: AnyResponse,
  action: Extract<RouteAction, { kind: 'redirect' }>,
  target: Routed,
): void {
  const location = renderTemplate(action.location, {
    variable: (name) =>
      name === 'scheme'
        ? 'https'
        : name === 'host'
          ? target.host
          : name === 'uri'
            ? target.path.normalized
            : (req.url ?? ''),
    header: () => '',
  });
  if (!res.headersSent) sendOwn(res, action.status, ctx.id, { headers: { location } });
}

/**
 * A stopping server closes each HTTP/1.1 connection after its answer (HTTP/2 sessions get GOAWAY) and opens no new
 * tunnel; an upgrade must ask for a WebSocket, the only protocol Gatehouse switches to.
 */
function admit(runtime: Runtime, ctx: RequestContext, req: AnyRequest, out: Answer): boolean {
  if (!(out instanceof RawAnswer)) {
    if (runtime.stopping && !('stream' in req)) common(out).setHeader('connection', 'close');
    return true;
  }
  if (runtime.stopping) refuse(ctx, req, out, 'ERR_SHUTTING_DOWN');
  else if (String(req.headers.upgrade).toLowerCase() !== 'websocket') refuse(ctx, req, out, 'ERR_HTTP_BAD_REQUEST');
  return out.status === undefined;
}

/** /oauth2/* of a site with [auth]: pages, redirects and JSON (auth/routes.ts); no WebSocket is served there. */
async function oauth2Endpoint(
  runtime: Runtime,
  ctx: RequestContext,
  req: AnyRequest,
  out: Answer,
  target: Extract<Target, { oauth2: true }>,
): Promise<void> {
  ctx.pathname = target.pathname;
  if (out instanceof RawAnswer) return refuse(ctx, req, out, 'ERR_ROUTE_NOT_FOUND');
  const { handleOAuth2 } = await login();
  Object.assign(
    ctx,
    await handleOAuth2(target.site.auth!, req, out, ctx.id, target.pathname, target.host, runtime.log),
  );
}

/** Anonymous: a page navigation is sent into the login, anything else gets 401 (auth/challenge.ts); an upgrade always 401. */
async function challenge(
  auth: SiteAuth,
  ctx: RequestContext,
  req: AnyRequest,
  out: Answer,
  target: Routed,
): Promise<void> {
  if (out instanceof RawAnswer) return refuse(ctx, req, out, 'ERR_AUTH_REQUIRED');
  const { sendChallenge } = await login();
  ctx.error = await sendChallenge(auth, req, out, ctx.id, target.pathname, requestOrigin(req.headers, target.host));
}

/** The site's policy (allowed emails, domains, groups, roles); a refusal names the rule. */
function authorize(auth: SiteAuth, session: Session, ctx: RequestContext, req: AnyRequest, out: Answer): boolean {
  ctx.user = session.identity.user;
  const refusal = auth.policy.authorize(session.identity);
  if (refusal) refuse(ctx, req, out, 'ERR_AUTH_FORBIDDEN', undefined, `${refusal.message} (rule: ${refusal.rule})`);
  return !refusal;
}

/** `status = N` routes: a bare answer of ours (403 is the deny rule's error page). */
function statusRoute(ctx: RequestContext, req: AnyRequest, res: AnyResponse, status: number): void {
  if (status === 403) return refuse(ctx, req, res, 'ERR_ROUTE_DENIED');
  if (!res.headersSent) sendOwn(res, status, ctx.id);
}

function served(ctx: RequestContext, req: AnyRequest, res: AnyResponse, result: StaticResult): void {
  ctx.bytes = result.bytes;
  if (result.error) refuse(ctx, req, res, result.error);
}

function proxied(ctx: RequestContext, req: AnyRequest, res: AnyResponse, group: string, result: ForwardResult): void {
  ctx.upstream = result.upstream;
  if (upstreamAsked(result)) ctx.group = group;
  ctx.bytes = result.bytes;
  ctx.cause = result.cause;
  if (result.error) refuse(ctx, req, res, result.error, result.cause);
}

/** An upgrade on a route that proxies with `websocket` on: the tunnel (proxy/forward-websocket.ts). */
async function tunnel(
  runtime: Runtime,
  ctx: RequestContext,
  req: IncomingMessage,
  answer: RawAnswer,
  target: Routed,
  session: Session | undefined,
  facts: ForwardingFacts,
): Promise<void> {
  const { site, route } = target;
  const action = route.action;
  if (action.kind !== 'proxy' || !route.websocket)
    return refuse(
      ctx,
      req,
      answer,
      action.kind === 'status' && action.status === 403 ? 'ERR_ROUTE_DENIED' : 'ERR_ROUTE_NOT_FOUND',
    );
  const auth = site.auth;
  const group = site.groups.get(action.upstream)!;
  if (site.health.get(action.upstream)?.allDown()) return refuse(ctx, req, answer, 'ERR_UPSTREAM_DOWN');
  const path = upstreamPath(ctx, target);
  if (path === undefined) return refuse(ctx, req, answer, 'ERR_PATH_REFUSED');
  const headers = requestHeaders(req, facts, auth, session, target);
  // A session's tunnel ends with the session (sign-out, expiry, …); a bearer token has no session (id '').
  const owner = auth && session?.id ? { key: auth.sessions.key(session), session, sessions: auth.sessions } : undefined;
  const onOpen =
    owner && ((upstream: Socket) => runtime.tunnels.add(owner.key, owner.session.expiresAt, answer.socket, upstream));
  const result = await forwardWebSocket(req, answer.socket, answer.head, {
    route,
    group,
    headers,
    path,
    requestId: ctx.id,
    onOpen,
  });
  // Signed out while the upstream was answering: that end found no tunnel to close yet.
  if (owner && !(await owner.sessions.current(owner.session).catch(() => owner.session)))
    runtime.tunnels.end(owner.key);
  ctx.upstream = result.upstream;
  if (upstreamAsked(result)) ctx.group = action.upstream;
  ctx.error = result.error;
  ctx.cause = result.cause;
  answer.status = result.status;
}

/** The request reached an upstream server, or failed for its group (unreachable, busy): it counts for that upstream. */
function upstreamAsked(result: { upstream?: string; error?: ErrorCode }): boolean {
  return result.upstream !== undefined || (result.error?.startsWith('ERR_UPSTREAM_') ?? false);
}

/**
 * The one writer of our error answers; records the code (and cause) for the log line and the metrics. On an HTTP
 * response: errors.ts's page or JSON. On an upgrade's socket: raw HTTP/1.1 JSON, then the socket is closed.
 */
function refuse(
  ctx: RequestContext,
  req: AnyRequest,
  out: Answer,
  code: ErrorCode,
  cause?: Error,
  detail?: string,
  headers?: Record<string, string>,
): void {
  ctx.error = code;
  ctx.cause ??= cause;
  if (out instanceof RawAnswer) {
    // Once answered (an open tunnel), the socket carries the upstream's stream: it is cut, never written into.
    if (out.status !== undefined) {
      out.socket.destroy();
      return;
    }
    out.status = statusOf(code);
    writeRawError(out.socket, code, ctx.id, headers);
    return;
  }
  // A body we refuse to read must not be drained from an HTTP/1.1 connection: close it instead. An HTTP/2 client
  // is told to stop sending it by RST_STREAM NO_ERROR after the answer (RFC 9113 §8.1).
  const refusedBody = code === 'ERR_BODY_TOO_LARGE' || code === 'ERR_BODY_TIMEOUT';
  sendError(req, out, code, ctx.id, refusedBody && !('stream' in req) ? { connection: 'close' } : headers, { detail });
  if (refusedBody && 'stream' in out) out.stream.close(http2.constants.NGHTTP2_NO_ERROR);
}

/** A thrown error here is a bug; the client still gets an answer and the process lives on. */
function failed(runtime: Runtime, ctx: RequestContext, req: AnyRequest, out: Answer, error: Error): void {
  if (error instanceof StoreUnavailableError) {
    runtime.log.warn({ req_id: ctx.id, err: { message: error.message } }, 'session store unavailable');
    return refuse(ctx, req, out, 'ERR_STORE_UNAVAILABLE', error, undefined, RETRY_SOON);
  }
  runtime.log.error({ req_id: ctx.id, err: error }, 'request handler failed');
  refuse(ctx, req, out, 'ERR_INTERNAL', error);
  if (!(out instanceof RawAnswer) && out.headersSent && !out.writableFinished) out.destroy();
}

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
import { sendError, statusOf, type ErrorCode } from '../base/errors.ts';
import { forwardingFacts } from './forwarding-facts.ts';
import { beginRequest, type RequestContext } from './request-context.ts';
import { resolveTarget, type Target } from './resolve-target.ts';
import { common, type AnyRequest, type AnyResponse } from '../base/types.ts';

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
  // On every response of the site from here on, our own pages included; an upstream's own header wins.
  if (target.site?.config.hsts && !(out instanceof RawAnswer))
    common(out).setHeader('strict-transport-security', target.site.config.hsts);
  if ('error' in target) return refuse(ctx, req, out, target.error, target.cause, target.cause?.message);
  if ('oauth2' in target) return await oauth2Endpoint(runtime, ctx, req, out, target);
  ctx.route = target.route;
  ctx.pathname = target.pathname;

  // A public site (no [auth]) does no auth work at all.
  const auth = target.site.auth;
  let session: Session | undefined;
  if (auth && !auth.skips(req.method, target.pathname)) {
    const found = await auth.authenticate(req.headers);
    if (found === PROVIDER_UNAVAILABLE)
      return refuse(ctx, req, out, 'ERR_AUTH_PROVIDER_UNAVAILABLE', undefined, undefined, RETRY_SOON);
    if (!found) return await challenge(auth, ctx, req, out, target);
    session = found;
    if (!authorize(auth, session, ctx, req, out)) return;
  }

  // act: the action of the route, by kind.
  if (out instanceof RawAnswer) return await tunnel(runtime, ctx, req as IncomingMessage, out, target, session);
  const action = target.route.action;
  if (action.kind === 'status') return statusRoute(ctx, req, out, action.status);
  if (action.kind === 'static')
    return served(ctx, req, out, await serveStatic(req, out, action, target.path.normalized));
  const group = target.site.groups.get(action.upstream)!;
  const headers = upstreamHeaders(req.headers, forwardingFacts(runtime, req, target.host, ctx.id), auth, session);
  // The upstream gets the path the rules matched, normalized, never the raw target (normalize-path.ts).
  proxied(
    ctx,
    req,
    out,
    await forwardHttp(req, out, {
      route: target.route,
      group,
      headers,
      path: target.path.normalized + target.path.query,
    }),
  );
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

function proxied(ctx: RequestContext, req: AnyRequest, res: AnyResponse, result: ForwardResult): void {
  ctx.upstream = result.upstream;
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
  const headers = upstreamHeaders(req.headers, forwardingFacts(runtime, req, target.host, ctx.id), auth, session);
  // A session's tunnel ends with the session (sign-out, expiry, …); a bearer token has no session (id '').
  const owner = auth && session?.id ? { key: auth.sessions.key(session), session, sessions: auth.sessions } : undefined;
  const onOpen =
    owner && ((upstream: Socket) => runtime.tunnels.add(owner.key, owner.session.expiresAt, answer.socket, upstream));
  const result = await forwardWebSocket(req, answer.socket, answer.head, {
    route,
    group,
    headers,
    path: target.path.normalized + target.path.query,
    requestId: ctx.id,
    onOpen,
  });
  // Signed out while the upstream was answering: that end found no tunnel to close yet.
  if (owner && !owner.sessions.current(owner.session)) runtime.tunnels.end(owner.key);
  ctx.upstream = result.upstream;
  ctx.error = result.error;
  ctx.cause = result.cause;
  answer.status = result.status;
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
  runtime.log.error({ req_id: ctx.id, err: error }, 'request handler failed');
  refuse(ctx, req, out, 'ERR_INTERNAL', error);
  if (!(out instanceof RawAnswer) && out.headersSent && !out.writableFinished) out.destroy();
}

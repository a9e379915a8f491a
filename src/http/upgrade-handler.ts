// WebSocket upgrades (HTTP/1.1 only) take the same path as requests: site by Host = SNI, deny rules, route,
// authenticate → 401 when anonymous (never a redirect) → authorize (403) → identity headers, then the tunnel. Errors are written on the raw socket, which is then closed.
import type { IncomingMessage } from 'node:http';
import type { Socket } from 'node:net';
import { upstreamHeaders } from '../auth/identity-headers.ts';
import { PROVIDER_UNAVAILABLE } from '../auth/site-auth.ts';
import { forwardWebSocket, writeRawError } from '../proxy/forward-websocket.ts';
import type { Runtime } from '../runtime/runtime.ts';
import type { ErrorCode } from './errors.ts';
import { forwardingFacts } from './forwarding-facts.ts';
import { beginRequest, type RequestContext } from './request-context.ts';
import { resolveTarget } from './resolve-target.ts';

export function createUpgradeHandler(runtime: Runtime): (req: IncomingMessage, socket: Socket, head: Buffer) => void {
  return (req, socket, head) => {
    const ctx = beginRequest(req);
    socket.on('error', (error) => runtime.log.debug({ req_id: ctx.id, err: error }, 'websocket client socket error'));
    handleUpgrade(runtime, ctx, req, socket, head)
      .catch((error: Error) => {
        runtime.log.error({ req_id: ctx.id, err: error }, 'upgrade handler failed');
        ctx.error = 'ERR_INTERNAL';
        writeRawError(socket, 'ERR_INTERNAL', ctx.id);
      })
      .finally(() => logUpgrade(runtime, ctx, req));
  };
}

async function handleUpgrade(runtime: Runtime, ctx: RequestContext, req: IncomingMessage, socket: Socket, head: Buffer): Promise<void> {
  const refuse = (code: ErrorCode, cause?: Error) => { ctx.error = code; ctx.cause = cause; writeRawError(socket, code, ctx.id); };
  if (runtime.stopping) return refuse('ERR_SHUTTING_DOWN');
  if (String(req.headers.upgrade).toLowerCase() !== 'websocket') return refuse('ERR_HTTP_BAD_REQUEST');

  const target = resolveTarget(runtime, req);
  ctx.site = target.site;
  if ('error' in target) return refuse(target.error, target.cause);
  if ('oauth2' in target) return refuse('ERR_ROUTE_NOT_FOUND');
  const { site, route, host, pathname, path } = target;
  ctx.route = route;

  const auth = site.auth;
  let session;
  if (auth && !auth.skips(req.method, pathname)) {
    const found = await auth.authenticate(req.headers);
    if (found === PROVIDER_UNAVAILABLE) return refuse('ERR_AUTH_PROVIDER_UNAVAILABLE');
    session = found;
    if (!session) return refuse('ERR_AUTH_REQUIRED');
    ctx.user = session.identity.user;
    if (auth.policy.authorize(session.identity)) return refuse('ERR_AUTH_FORBIDDEN');
  }
  if (route.action.kind !== 'proxy' || !route.websocket) return refuse(route.action.kind === 'status' && route.action.status === 403 ? 'ERR_ROUTE_DENIED' : 'ERR_ROUTE_NOT_FOUND');

  const group = site.groups.get(route.action.upstream)!;
  const headers = upstreamHeaders(req.headers, forwardingFacts(runtime, req, host, ctx.id), auth, session);
  // A session's tunnel ends with the session (sign-out, expiry, …); a bearer token has no session (id '').
  const owner = auth && session?.id ? { key: auth.sessions.key(session), session, sessions: auth.sessions } : undefined;
  const onOpen = owner && ((upstream: Socket) => runtime.tunnels.add(owner.key, owner.session.expiresAt, socket, upstream));
  const result = await forwardWebSocket(req, socket, head, { route, group, headers, path: path.normalized + path.query, requestId: ctx.id, onOpen });
  // Signed out while the upstream was answering: that end found no tunnel to close yet.
  if (owner && !owner.sessions.current(owner.session)) runtime.tunnels.end(owner.key);
  ctx.upstream = result.upstream;
  ctx.error = result.error;
  ctx.cause = result.cause;
}

function logUpgrade(runtime: Runtime, ctx: RequestContext, req: IncomingMessage): void {
  const line = {
    req_id: ctx.id, site: ctx.site?.config.name, method: req.method, path: (req.url ?? '').split('?')[0], upgrade: 'websocket',
    upstream: ctx.upstream, ...(ctx.user ? { user: ctx.user } : {}), client: ctx.client, ms: Math.round((performance.now() - ctx.startedAt) * 10) / 10,
    ...(ctx.error ? { error: ctx.error } : {}), ...(ctx.cause ? { cause: ctx.cause.message } : {}),
  };
  if (ctx.error) runtime.log.warn(line, 'upgrade');
  else if (runtime.config.log.access_log) runtime.log.info(line, 'upgrade');
}

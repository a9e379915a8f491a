// THE request path. Every HTTPS request reads top to bottom through here; each step answers or hands on.
//   begin (id, access log) → site by Host = SNI → /oauth2/* of the site | path, deny rules, route →
//   authenticate (cookie → session → refresh when due) → challenge when anonymous (302 navigation / 401 other) →
//   authorize (policy, 403) → action: proxy with identity headers | serve files | fixed status.
import http2 from 'node:http2';
import { sendChallenge, sendProviderUnavailable } from '../auth/challenge.ts';
import { sendOwn } from '../base/own-answer.ts';
import { upstreamHeaders } from '../auth/identity-headers.ts';
import { requestOrigin } from '../auth/redirect.ts';
import { handleOAuth2 } from '../auth/routes.ts';
import { PROVIDER_UNAVAILABLE } from '../auth/site-auth.ts';
import type { Session } from '../session/sessions.ts';
import { logWhenDone } from '../observability/access-log.ts';
import { forwardHttp } from '../proxy/forward-http.ts';
import { serveStatic } from '../proxy/static-files.ts';
import type { Runtime } from '../runtime/runtime.ts';
import { sendError, type ErrorCode } from './errors.ts';
import { forwardingFacts } from './forwarding-facts.ts';
import { beginRequest, type RequestContext } from './request-context.ts';
import { resolveTarget } from './resolve-target.ts';
import { common, type AnyRequest, type AnyResponse } from './types.ts';

export function createRequestHandler(runtime: Runtime): (req: AnyRequest, res: AnyResponse) => void {
  return (req, res) => {
    const ctx = beginRequest(req);
    const handled = handleRequest(runtime, ctx, req, res).catch((error: Error) => {
      // A thrown error here is a bug; the client still gets an answer and the process lives on.
      runtime.log.error({ req_id: ctx.id, err: error }, 'request handler failed');
      fail(ctx, req, res, 'ERR_INTERNAL', error);
      if (res.headersSent && !res.writableFinished) res.destroy();
    });
    logWhenDone(runtime, ctx, req, res, handled);
  };
}

async function handleRequest(runtime: Runtime, ctx: RequestContext, req: AnyRequest, res: AnyResponse): Promise<void> {
  if (runtime.stopping && !('stream' in req)) common(res).setHeader('connection', 'close');

  const target = resolveTarget(runtime, req);
  ctx.site = target.site;
  // On every response of the site from here on, our own pages included; an upstream's own header wins.
  if (target.site?.config.hsts) common(res).setHeader('strict-transport-security', target.site.config.hsts);
  if ('error' in target) return fail(ctx, req, res, target.error, target.cause, undefined, target.cause?.message);
  if ('oauth2' in target) {
    ctx.pathname = target.pathname;
    Object.assign(ctx, await handleOAuth2(target.site.auth!, req, res, ctx.id, target.pathname, target.host, runtime.log));
    return;
  }
  const { site, route, pathname, path, host } = target;
  ctx.route = route;
  ctx.pathname = pathname;

  // A public site (no [auth]) does no auth work at all.
  const auth = site.auth;
  let session: Session | undefined;
  if (auth && !auth.skips(req.method, pathname)) {
    const found = await auth.authenticate(req.headers);
    if (found === PROVIDER_UNAVAILABLE) { ctx.error = sendProviderUnavailable(req, res, ctx.id); return; }
    session = found;
    if (!session) {
      ctx.error = await sendChallenge(auth, req, res, ctx.id, pathname, requestOrigin(req.headers, host));
      return;
    }
    ctx.user = session.identity.user;
    const refusal = auth.policy.authorize(session.identity);
    if (refusal) return fail(ctx, req, res, 'ERR_AUTH_FORBIDDEN', undefined, undefined, `${refusal.message} (rule: ${refusal.rule})`);
  }

  const action = route.action;
  if (action.kind === 'status') return fail(ctx, req, res, action.status === 403 ? 'ERR_ROUTE_DENIED' : undefined, undefined, action.status);

  if (action.kind === 'static') {
    const served = await serveStatic(req, res, action, path.normalized);
    ctx.bytes = served.bytes;
    if (served.error) fail(ctx, req, res, served.error);
    return;
  }

  const group = site.groups.get(action.upstream)!;
  const headers = upstreamHeaders(req.headers, forwardingFacts(runtime, req, host, ctx.id), auth, session);
  // The upstream gets the path the rules matched, normalized, never the raw target (normalize-path.ts).
  const result = await forwardHttp(req, res, { route, group, headers, path: path.normalized + path.query });
  ctx.upstream = result.upstream;
  ctx.bytes = result.bytes;
  ctx.cause = result.cause;
  if (result.error) fail(ctx, req, res, result.error, result.cause);
}

/** Answers with one of our error pages (or a bare status for `status = N` routes) and records why. */
function fail(ctx: RequestContext, req: AnyRequest, res: AnyResponse, code: ErrorCode | undefined, cause?: Error, bareStatus?: number, detail?: string): void {
  if (code) {
    ctx.error = code;
    ctx.cause ??= cause;
    // A body we refuse to read must not be drained from an HTTP/1.1 connection: close it instead. An HTTP/2 client
    // is told to stop sending it by RST_STREAM NO_ERROR after the answer (RFC 9113 §8.1).
    const refusedBody = code === 'ERR_BODY_TOO_LARGE' || code === 'ERR_BODY_TIMEOUT';
    sendError(req, res, code, ctx.id, refusedBody && !('stream' in req) ? { connection: 'close' } : undefined, { detail });
    if (refusedBody && 'stream' in res) res.stream.close(http2.constants.NGHTTP2_NO_ERROR);
    return;
  }
  if (!res.headersSent) sendOwn(res, bareStatus ?? 404, ctx.id);
}

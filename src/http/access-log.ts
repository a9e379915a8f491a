// One access-log line and the request metrics per request (a WebSocket upgrade is one too), recorded when the request is over: its response has
// closed (finished or aborted) and Gatehouse's work for it has ended (an upstream exchange, a body still being read).
// Until then it counts as in flight; an HTTP/2 response closes at once when its stream is reset, the work behind it
// need not have.
import type { RequestContext } from './request-context.ts';
import type { AnyRequest, AnyResponse } from '../base/types.ts';
import type { Runtime } from './runtime.ts';

/** nginx's status for a request whose client went away before the response started ("client closed request"). */
const CLIENT_CLOSED = 499;

export function logWhenDone(
  runtime: Runtime,
  ctx: RequestContext,
  req: AnyRequest,
  res: AnyResponse,
  work?: Promise<unknown>,
): void {
  runtime.metrics?.requestStarted();
  let open = work ? 2 : 1;
  const over = () => {
    if (--open !== 0) return;
    // An HTTP/2 response reports itself finished after a reset; its stream knows it was aborted.
    const complete = 'stream' in res ? !res.stream.aborted : res.writableFinished;
    record(runtime, ctx, req, complete || res.headersSent ? res.statusCode : CLIENT_CLOSED, complete, 'request');
  };
  res.once('close', over);
  void work?.then(over, over);
}

/**
 * A WebSocket upgrade's line and metrics, written when its work is over: answered 101 (the tunnel then lives on by
 * itself), refused, the upstream's other answer relayed, or left by its client before any answer (499).
 */
export function logUpgradeWhenDone(
  runtime: Runtime,
  ctx: RequestContext,
  req: AnyRequest,
  answer: { readonly status: number | undefined },
  work: Promise<unknown>,
): void {
  runtime.metrics?.requestStarted();
  const over = () => record(runtime, ctx, req, answer.status ?? CLIENT_CLOSED, answer.status !== undefined, 'upgrade');
  void work.then(over, over);
}

function record(
  runtime: Runtime,
  ctx: RequestContext,
  req: AnyRequest,
  status: number,
  complete: boolean,
  kind: 'request' | 'upgrade',
): void {
  const { log, metrics } = runtime;
  if (metrics) {
    const site = ctx.site?.config.name ?? '';
    const seconds = (performance.now() - ctx.startedAt) / 1000;
    metrics.requestDone(site, status, seconds, ctx.error);
    if (ctx.group !== undefined) metrics.upstreamDone(site, ctx.group, ctx.upstream ?? '', status, seconds, ctx.error);
    if (kind === 'upgrade' && status !== 101) metrics.upgradeRefused(site, status, ctx.error);
  }
  if (!runtime.config.log.access_log && status < 500 && !ctx.cause) return;
  const url = req.url ?? '';
  const query = url.indexOf('?');
  const line = {
    req_id: ctx.id,
    site: ctx.site?.config.name,
    method: req.method,
    // The query is left out: it may carry codes, tokens or personal data.
    path: query < 0 ? url : url.slice(0, query),
    status,
    bytes: ctx.bytes,
    ms: Math.round((performance.now() - ctx.startedAt) * 10) / 10,
    upstream: ctx.upstream,
    ...(ctx.upstreamPath !== undefined ? { upstream_path: ctx.upstreamPath } : {}),
    ...(ctx.user ? { user: ctx.user } : {}),
    client: ctx.client,
    proto: `HTTP/${req.httpVersion}`,
    upgrade: kind === 'upgrade' ? 'websocket' : undefined,
    ...(ctx.error ? { error: ctx.error } : {}),
    ...(ctx.cause ? { cause: ctx.cause.message } : {}),
    ...(complete ? {} : { aborted: true }),
  };
  if (status >= 500 || ctx.cause) log.warn(line, kind);
  else log.info(line, kind);
}

// One access-log line and the request metrics per request, recorded when the request is over: its response has
// closed (finished or aborted) and Gatehouse's work for it has ended (an upstream exchange, a body still being read).
// Until then it counts as in flight; an HTTP/2 response closes at once when its stream is reset, the work behind it
// need not have.
import type { RequestContext } from '../http/request-context.ts';
import type { AnyRequest, AnyResponse } from '../http/types.ts';
import type { Runtime } from '../runtime/runtime.ts';

/** nginx's status for a request whose client went away before the response started ("client closed request"). */
const CLIENT_CLOSED = 499;

export function logWhenDone(runtime: Runtime, ctx: RequestContext, req: AnyRequest, res: AnyResponse, work?: Promise<unknown>): void {
  const { log, metrics } = runtime;
  const enabled = runtime.config.log.access_log;
  metrics?.requestStarted();
  let open = work ? 2 : 1;
  const over = () => { if (--open === 0) record(); };
  res.once('close', over);
  void work?.then(over, over);
  const record = () => {
    // An HTTP/2 response reports itself finished after a reset; its stream knows it was aborted.
    const complete = 'stream' in res ? !res.stream.aborted : res.writableFinished;
    const status = complete || res.headersSent ? res.statusCode : CLIENT_CLOSED;
    metrics?.requestDone(ctx.site?.config.name ?? '', status, (performance.now() - ctx.startedAt) / 1000, ctx.error);
    if (!enabled && status < 500 && !ctx.cause) return;
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
      ...(ctx.user ? { user: ctx.user } : {}),
      client: ctx.client,
      proto: `HTTP/${req.httpVersion}`,
      ...(ctx.error ? { error: ctx.error } : {}),
      ...(ctx.cause ? { cause: ctx.cause.message } : {}),
      ...(complete ? {} : { aborted: true }),
    };
    if (status >= 500 || ctx.cause) log.warn(line, 'request');
    else log.info(line, 'request');
  };
}

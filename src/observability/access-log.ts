// One access-log line and the request metrics per request, recorded when the response is over (finished or aborted).
import type { RequestContext } from '../http/request-context.ts';
import type { AnyRequest, AnyResponse } from '../http/types.ts';
import type { Runtime } from '../runtime/runtime.ts';

export function logWhenDone(runtime: Runtime, ctx: RequestContext, req: AnyRequest, res: AnyResponse): void {
  const { log, metrics } = runtime;
  const enabled = runtime.config.log.access_log;
  metrics?.requestStarted();
  res.once('close', () => {
    const status = res.statusCode;
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
      ...(res.writableFinished ? {} : { aborted: true }),
    };
    if (status >= 500 || ctx.cause) log.warn(line, 'request');
    else log.info(line, 'request');
  });
}

// The plain-HTTP listener (nginx `listen 80`): ACME HTTP-01 challenges are answered first, before any redirect,
// auth or deny rule; every other request for a configured site is sent to HTTPS with 308 (keeps method and body).
import type { IncomingMessage, ServerResponse } from 'node:http';
import { sendOwn } from '../base/own-answer.ts';
import { logWhenDone } from './access-log.ts';
import type { Runtime } from './runtime.ts';
import { normalizeHost } from '../tls/name-index.ts';
import { sendError } from '../base/errors.ts';
import { beginRequest } from './request-context.ts';

export function createPlainHttpHandler(
  runtime: Runtime,
  httpsPort: () => number,
): (req: IncomingMessage, res: ServerResponse) => void {
  return (req, res) => {
    const ctx = beginRequest(req);
    logWhenDone(runtime, ctx, req, res);
    for (const responder of runtime.plainHttpResponders) if (responder(req, res, ctx.id)) return;

    const host = normalizeHost(req.headers.host);
    ctx.site = host ? runtime.sites.get(host) : undefined;
    // Only names we serve are redirected: anything else would make us an open redirector for arbitrary Host headers.
    if (!host || !ctx.site || !req.url?.startsWith('/')) {
      ctx.error = host ? 'ERR_SITE_UNKNOWN' : 'ERR_HTTP_BAD_REQUEST';
      sendError(req, res, ctx.error, ctx.id);
      return;
    }
    const authority = host.includes(':') ? `[${host}]` : host;
    const port = httpsPort();
    const location = `https://${authority}${port === 443 ? '' : `:${port}`}${req.url}`;
    sendOwn(res, 308, ctx.id, { headers: { location, ...(runtime.stopping ? { connection: 'close' } : {}) } });
  };
}

// Forwards one HTTP request (from an HTTP/1.1 or HTTP/2 client) to an upstream over a keep-alive pool and streams the
// answer back: no buffering in either direction unless the route asks for request buffering, backpressure both ways.
import type { Readable } from 'node:stream';
import type { Dispatcher } from 'undici';
import type { Route } from '../config/model.ts';
import type { ErrorCode } from '../base/errors.ts';
import { resetStream } from '../base/http2-limits.ts';
import { common, type AnyRequest, type AnyResponse } from '../base/types.ts';
import {
  ClientClosedError,
  clientBody,
  clientGone,
  watchClient,
  type Cancellable,
  type ClientWatch,
} from './client-abort.ts';
import { clientResponseHeaders } from './request-headers.ts';
import { errorCodeFor, isConnectFailure } from './upstream-errors.ts';
import type { UpstreamGroupPool, UpstreamServer } from './upstream-pools.ts';

export interface ForwardResult {
  /** The upstream server that answered (or the last one tried); unset when no request was sent. */
  upstream?: string;
  /** Set when Gatehouse must answer with an error itself (nothing was sent to the client yet). */
  error?: ErrorCode;
  /** The underlying cause, for the log line. */
  cause?: Error;
  /** Bytes of response body written to the client. */
  bytes: number;
  /** The client went away first; the upstream exchange was aborted (or never started). */
  clientClosed?: boolean;
}

const IDEMPOTENT = new Set(['GET', 'HEAD', 'OPTIONS', 'TRACE', 'PUT', 'DELETE']);

export async function forwardHttp(
  req: AnyRequest,
  res: AnyResponse,
  options: {
    route: Route;
    group: UpstreamGroupPool;
    headers: Record<string, string | string[]>;
    path: string;
  },
): Promise<ForwardResult> {
  const { route, group, headers, path } = options;
  const method = req.method ?? 'GET';
  const declaredLength = contentLength(req.headers['content-length']);
  if (declaredLength !== undefined && declaredLength > route.maxBodySize)
    return { error: 'ERR_BODY_TOO_LARGE', bytes: 0 };

  const client = watchClient(req, res);
  let body: Buffer | Readable | null = null;
  try {
    if (hasBody(req, declaredLength)) {
      body = clientBody(req, { maxBytes: route.maxBodySize, idleMs: route.bodyTimeoutMs });
      if (route.requestBuffering) {
        const buffered = await readBody(body).catch((error: Error) => error);
        if (buffered instanceof Error) return failed(buffered);
        body = buffered;
      }
    }
    // A body stream can be sent once only; a buffered body or none can go to the next server after a refused connection.
    const retryable = IDEMPOTENT.has(method) && !(body !== null && !Buffer.isBuffer(body));

    let last: ForwardResult = { error: 'ERR_UPSTREAM_UNREACHABLE', bytes: 0 };
    for (const server of group.attemptOrder()) {
      const slot = await group.acquire(server, client, route.connectTimeoutMs);
      if (slot === 'busy')
        return {
          error: 'ERR_UPSTREAM_BUSY',
          cause: new Error(`all ${server.keepalive} connections to ${server.origin} are busy`),
          bytes: 0,
        };
      if (slot === 'cancelled' || client.gone || clientGone(req, res)) {
        if (slot !== 'cancelled') slot.release();
        return { clientClosed: true, bytes: 0 };
      }
      if (body !== null && !Buffer.isBuffer(body) && body.errored) {
        slot.release();
        return failed(body.errored);
      }
      try {
        last = await dispatchOnce(res, server, group, client, { method, path, headers, body, route });
      } finally {
        slot.release();
      }
      if (!last.error || !isConnectFailure(last.cause)) return last;
      group.markDown(server);
      if (!retryable) return last;
    }
    return last;
  } finally {
    client.settle();
    // A streamed body the upstream never took (busy, cancelled) must not keep listening to the client.
    if (body !== null && !Buffer.isBuffer(body) && !body.readableEnded) body.destroy();
  }
}

/** A request that failed on the client's side (its body): an error page, or nothing when the client is gone. */
function failed(error: Error): ForwardResult {
  const code = errorCodeFor(error);
  return code === undefined ? { clientClosed: true, bytes: 0 } : { error: code, cause: error, bytes: 0 };
}

function dispatchOnce(
  res: AnyResponse,
  server: UpstreamServer,
  group: UpstreamGroupPool,
  client: ClientWatch,
  request: {
    method: string;
    path: string;
    headers: Record<string, string | string[]>;
    body: Buffer | Readable | null;
    route: Route;
  },
): Promise<ForwardResult> {
  const { route } = request;
  const pool = group.poolFor(server, route.connectTimeoutMs);
  return new Promise((resolve) => {
    let sent = false;
    let started = false;
    let bytes = 0;
    let stallTimer: NodeJS.Timeout | undefined;
    let flushTimer: NodeJS.Immediate | undefined;
    const done = (result: Omit<ForwardResult, 'bytes'>) => {
      clearTimeout(stallTimer);
      clearImmediate(flushTimer);
      client.cancels = undefined;
      resolve({ upstream: server.origin, bytes, ...result });
    };

    pool.dispatch(
      {
        origin: server.origin,
        path: request.path,
        method: request.method,
        headers: request.headers,
        body: request.body,
        headersTimeout: route.readTimeoutMs,
        bodyTimeout: route.readTimeoutMs,
      },
      {
        onRequestStart(c) {
          // Called just before the request is written to a connected socket: aborting here sends nothing. undici checks
          // an idle socket before reusing it (asynchronously), so an HTTP/2 RST_STREAM that came in the same read as
          // the HEADERS (rapid reset) is seen here first (a test holds it: the upstream gets none of them).
          if (client.gone) return c.abort(new ClientClosedError('the client closed the request'));
          sent = true;
          client.cancels = new UpstreamExchange(c);
        },
        onResponseStart(_c, statusCode, headers) {
          started = true;
          group.markUp(server);
          common(res).writeHead(statusCode, clientResponseHeaders(headers, route.responseHeaders));
          // Headers leave with the first body chunk, in one TLS record and one syscall (flushing them alone cost a
          // second write per response: 15 % of the keep-alive profile). A slow or streaming upstream (server-sent
          // events) still gets them out within one event-loop turn.
          flushTimer = setImmediate(() => {
            if (!res.headersSent && 'flushHeaders' in res) res.flushHeaders();
          });
        },
        onResponseData(c, chunk) {
          bytes += chunk.length;
          if (common(res).write(chunk)) return;
          // The client reads slower than the upstream sends: pause the upstream, give up after send_timeout.
          c.pause();
          stallTimer = setTimeout(
            () =>
              abortUpstream(
                c,
                Object.assign(new Error('client did not read for send_timeout'), { code: 'ERR_SEND_TIMEOUT' }),
              ),
            route.sendTimeoutMs,
          );
          res.once('drain', () => {
            clearTimeout(stallTimer);
            c.resume();
          });
        },
        onResponseEnd() {
          res.end();
          done({});
        },
        onResponseError(_c, error) {
          if (client.gone || errorCodeFor(error) === undefined) {
            // The access log names an upstream only when the request did reach it.
            done({ clientClosed: true, ...(sent ? {} : { upstream: undefined }) });
            return;
          }
          if (started || res.headersSent) {
            // Mid-stream failure: the client must see a broken response, not a short one that looks complete.
            done({ cause: error });
            if ('stream' in res) resetStream(res.stream);
            else res.destroy(error);
            return;
          }
          done({ error: errorCodeFor(error), cause: error });
        },
      },
    );
  });
}

/**
 * A running upstream exchange, cancelled when its client goes away: the request is aborted and its connection closed
 * (an HTTP/1.1 exchange cannot be cancelled otherwise), so no connection stays busy for a response nobody reads.
 */
class UpstreamExchange implements Cancellable {
  readonly #controller: Dispatcher.DispatchController;
  constructor(controller: Dispatcher.DispatchController) {
    this.#controller = controller;
  }
  cancel(): void {
    abortUpstream(this.#controller, new ClientClosedError('the client closed the request'));
  }
}

/** Aborts the upstream request; undici tears a paused upstream connection down only once it reads again. */
function abortUpstream(controller: Dispatcher.DispatchController, reason: Error): void {
  controller.abort(reason);
  if (controller.paused) controller.resume();
}

function contentLength(value: string | undefined): number | undefined {
  if (value === undefined || !/^\d+$/.test(value)) return undefined;
  return Number(value);
}

function hasBody(req: AnyRequest, declaredLength: number | undefined): boolean {
  if ('stream' in req) return !req.stream.endAfterHeaders;
  return (declaredLength ?? 0) > 0 || req.headers['transfer-encoding'] !== undefined;
}

/** Reads a whole body (request_buffering = true); clientBody() bounds its size and the time between chunks. */
async function readBody(source: Readable): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const chunk of source as AsyncIterable<Buffer>) chunks.push(chunk);
  return Buffer.concat(chunks);
}

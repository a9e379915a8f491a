// Forwards one HTTP request (from an HTTP/1.1 or HTTP/2 client) to an upstream over a keep-alive pool and streams the
// answer back: no buffering in either direction unless the route asks for request buffering, backpressure both ways.
import { Transform, type Readable } from 'node:stream';
import type { Dispatcher } from 'undici';
import type { Route } from '../config/load.ts';
import type { ErrorCode } from '../http/errors.ts';
import { common, type AnyRequest, type AnyResponse } from '../http/types.ts';
import { clientResponseHeaders } from './request-headers.ts';
import type { UpstreamGroupPool, UpstreamServer } from './upstream-pools.ts';

export interface ForwardResult {
  /** The upstream server that answered (or the last one tried). */
  upstream?: string;
  /** Set when Gatehouse must answer with an error itself (nothing was sent to the client yet). */
  error?: ErrorCode;
  /** The underlying cause, for the log line. */
  cause?: Error;
  /** Bytes of response body written to the client. */
  bytes: number;
}

const IDEMPOTENT = new Set(['GET', 'HEAD', 'OPTIONS', 'TRACE', 'PUT', 'DELETE']);
/** Failures where the request never reached the server: safe to try the next one. */
const CONNECT_FAILURES = new Set(['ECONNREFUSED', 'EHOSTUNREACH', 'ENETUNREACH', 'ENOTFOUND', 'EAI_AGAIN', 'UND_ERR_CONNECT_TIMEOUT']);

class BodyTooLargeError extends Error { code = 'ERR_BODY_TOO_LARGE'; }

export async function forwardHttp(req: AnyRequest, res: AnyResponse, options: {
  route: Route; group: UpstreamGroupPool; headers: Record<string, string | string[]>; path: string;
}): Promise<ForwardResult> {
  const { route, group, headers, path } = options;
  const method = req.method ?? 'GET';
  const declaredLength = contentLength(req.headers['content-length']);
  if (declaredLength !== undefined && declaredLength > route.maxBodySize) return { error: 'ERR_BODY_TOO_LARGE', bytes: 0 };

  let body: Buffer | Readable | null = null;
  if (hasBody(req, declaredLength)) {
    if (route.requestBuffering) {
      const buffered = await readBody(req, route.maxBodySize).catch((error: Error) => error);
      if (buffered instanceof Error) return { error: buffered instanceof BodyTooLargeError ? 'ERR_BODY_TOO_LARGE' : 'ERR_HTTP_BAD_REQUEST', cause: buffered, bytes: 0 };
      body = buffered;
    } else {
      body = declaredLength === undefined ? limitBody(req, route.maxBodySize) : req;
    }
  }
  // A body stream can be sent once only; a buffered body or none can go to the next server after a refused connection.
  const retryable = IDEMPOTENT.has(method) && !(body !== null && !Buffer.isBuffer(body));

  let last: ForwardResult = { error: 'ERR_UPSTREAM_UNREACHABLE', bytes: 0 };
  for (const server of group.attemptOrder()) {
    last = await dispatchOnce(req, res, server, group, { method, path, headers, body, route });
    const code = (last.cause as NodeJS.ErrnoException | undefined)?.code;
    if (!last.error || !code || !CONNECT_FAILURES.has(code)) return last;
    group.markDown(server);
    if (!retryable) return last;
  }
  return last;
}

function dispatchOnce(req: AnyRequest, res: AnyResponse, server: UpstreamServer, group: UpstreamGroupPool, request: {
  method: string; path: string; headers: Record<string, string | string[]>; body: Buffer | Readable | null; route: Route;
}): Promise<ForwardResult> {
  const { route } = request;
  const pool = group.poolFor(server, route.connectTimeoutMs);
  return new Promise((resolve) => {
    let started = false;
    let bytes = 0;
    let stallTimer: NodeJS.Timeout | undefined;
    let controller: Dispatcher.DispatchController | undefined;
    const done = (result: Omit<ForwardResult, 'upstream' | 'bytes'>) => {
      clearTimeout(stallTimer);
      res.off('close', onClientClose);
      resolve({ upstream: server.origin, bytes, ...result });
    };
    const onClientClose = () => { if (!res.writableFinished && controller) abortUpstream(controller, new Error('client closed the connection')); };
    res.on('close', onClientClose);

    pool.dispatch({
      origin: server.origin,
      path: request.path,
      method: request.method,
      headers: request.headers,
      body: request.body,
      headersTimeout: route.readTimeoutMs,
      bodyTimeout: route.readTimeoutMs,
    }, {
      onRequestStart(c) {
        controller = c;
        if (res.destroyed) c.abort(new Error('client closed the connection'));
      },
      onResponseStart(_c, statusCode, headers) {
        started = true;
        group.markUp(server);
        common(res).writeHead(statusCode, clientResponseHeaders(headers));
        // Headers go out now, so a client of a slow or streaming upstream (server-sent events) sees them at once.
        if ('flushHeaders' in res) res.flushHeaders();
      },
      onResponseData(c, chunk) {
        bytes += chunk.length;
        if (common(res).write(chunk)) return;
        // The client reads slower than the upstream sends: pause the upstream, give up after send_timeout.
        c.pause();
        stallTimer = setTimeout(() => abortUpstream(c, Object.assign(new Error('client did not read for send_timeout'), { code: 'ERR_SEND_TIMEOUT' })), route.sendTimeoutMs);
        res.once('drain', () => { clearTimeout(stallTimer); c.resume(); });
      },
      onResponseEnd() {
        res.end();
        done({});
      },
      onResponseError(_c, error) {
        if (started || res.headersSent) {
          // Mid-stream failure: the client must see a broken response, not a short one that looks complete.
          if ('stream' in res) res.stream.close(0x2 /* INTERNAL_ERROR */); else res.destroy(error);
          done({ cause: error });
          return;
        }
        done({ error: errorCodeFor(error), cause: error });
      },
    });
  });
}

/** Aborts the upstream request; undici tears a paused upstream connection down only once it reads again. */
function abortUpstream(controller: Dispatcher.DispatchController, reason: Error): void {
  controller.abort(reason);
  if (controller.paused) controller.resume();
}

function errorCodeFor(error: Error): ErrorCode {
  const code = (error as NodeJS.ErrnoException).code ?? '';
  if (error instanceof BodyTooLargeError || code === 'ERR_BODY_TOO_LARGE' || (error as { cause?: unknown }).cause instanceof BodyTooLargeError) return 'ERR_BODY_TOO_LARGE';
  if (code === 'UND_ERR_CONNECT_TIMEOUT' || code === 'UND_ERR_HEADERS_TIMEOUT' || code === 'UND_ERR_BODY_TIMEOUT') return 'ERR_UPSTREAM_TIMEOUT';
  if (CONNECT_FAILURES.has(code)) return 'ERR_UPSTREAM_UNREACHABLE';
  return 'ERR_UPSTREAM_RESET';
}

function contentLength(value: string | undefined): number | undefined {
  if (value === undefined || !/^\d+$/.test(value)) return undefined;
  return Number(value);
}

function hasBody(req: AnyRequest, declaredLength: number | undefined): boolean {
  if ('stream' in req) return !req.stream.endAfterHeaders;
  return (declaredLength ?? 0) > 0 || req.headers['transfer-encoding'] !== undefined;
}

/** Passes a body of unknown length through, failing the stream once it exceeds the limit (nginx cuts chunked bodies off the same way). */
function limitBody(source: Readable, limit: number): Readable {
  let seen = 0;
  const counter = new Transform({
    transform(chunk: Buffer, _encoding, callback) {
      seen += chunk.length;
      if (seen > limit) callback(new BodyTooLargeError(`request body exceeds ${limit} bytes`));
      else callback(null, chunk);
    },
  });
  source.on('error', (error) => counter.destroy(error));
  return source.pipe(counter);
}

async function readBody(source: Readable, limit: number): Promise<Buffer> {
  const chunks: Buffer[] = [];
  let seen = 0;
  for await (const chunk of source as AsyncIterable<Buffer>) {
    seen += chunk.length;
    if (seen > limit) throw new BodyTooLargeError(`request body exceeds ${limit} bytes`);
    chunks.push(chunk);
  }
  return Buffer.concat(chunks);
}

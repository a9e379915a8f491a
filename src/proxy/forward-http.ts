// Forwards one HTTP request (from an HTTP/1.1 or HTTP/2 client) to an upstream over a keep-alive pool and streams the
// answer back: no buffering in either direction unless the route asks for request buffering, backpressure both ways.
// Per request: one Exchange (the handler its connection calls) and one promise; everything else lives on the
// connection (upstream-connection.ts).
import type { Readable } from 'node:stream';
import type { ResponseHeaders, Route } from '../config/model.ts';
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
import { serializeRequestHead, type BodyFraming } from './request-head.ts';
import { clientResponseHeaderList } from './request-headers.ts';
import type { ExchangeHandler, Retry, UpstreamConnection } from './upstream-connection.ts';
import { errorCodeFor, isConnectFailure, UpstreamError } from './upstream-errors.ts';
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
    const framing: BodyFraming =
      body === null
        ? NO_BODY
        : Buffer.isBuffer(body)
          ? { kind: 'length', length: body.length }
          : declaredLength !== undefined
            ? { kind: 'length', length: declaredLength }
            : CHUNKED;
    let head: string;
    try {
      head = serializeRequestHead(method, path, headers, framing);
    } catch (error) {
      return { error: errorCodeFor(error as Error) ?? 'ERR_UPSTREAM_RESET', cause: error as Error, bytes: 0 };
    }

    let last: ForwardResult = { error: 'ERR_UPSTREAM_UNREACHABLE', bytes: 0 };
    for (const server of group.attemptOrder()) {
      const acquired = group.acquire(server, client, route.connectTimeoutMs);
      const slot = acquired instanceof Promise ? await acquired : acquired;
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
        const chunked = framing === CHUNKED;
        let attempt = await dispatchOnce(res, server, group, client, { head, body, chunked, route, fresh: false });
        // A keep-alive connection the server closed as the request left: once more, on a new connection (nginx).
        if (attempt.retry === 'unsent' || (attempt.retry === 'stale' && retryable))
          attempt = await dispatchOnce(res, server, group, client, { head, body, chunked, route, fresh: true });
        last = attempt.result;
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

const NO_BODY: BodyFraming = { kind: 'none' };
const CHUNKED: BodyFraming = { kind: 'chunked' };

/** A request that failed on the client's side (its body): an error page, or nothing when the client is gone. */
function failed(error: Error): ForwardResult {
  const code = errorCodeFor(error);
  return code === undefined ? { clientClosed: true, bytes: 0 } : { error: code, cause: error, bytes: 0 };
}

interface Attempt {
  result: ForwardResult;
  /** The request may go again on a new connection (see Retry); only when nothing reached the client. */
  retry: Retry;
}

function dispatchOnce(
  res: AnyResponse,
  server: UpstreamServer,
  group: UpstreamGroupPool,
  client: ClientWatch,
  request: { head: string; body: Buffer | Readable | null; chunked: boolean; route: Route; fresh: boolean },
): Promise<Attempt> {
  const { route } = request;
  const connection = server.pool.acquire(route.connectTimeoutMs, request.fresh);
  return new Promise((resolve) => {
    const exchange = new Exchange(res, server, group, client, connection, route.responseHeaders, resolve);
    client.cancels = exchange;
    connection.start(exchange, request.head, request.body, request.chunked, route);
  });
}

/**
 * One upstream exchange: relays the response to the client as its connection parses it, and is what a client that
 * goes away cancels (the connection is then closed: an HTTP/1.1 exchange cannot be cancelled otherwise, and no
 * connection stays busy for a response nobody reads).
 */
class Exchange implements ExchangeHandler, Cancellable {
  readonly #res: AnyResponse;
  readonly #server: UpstreamServer;
  readonly #group: UpstreamGroupPool;
  readonly #client: ClientWatch;
  readonly #connection: UpstreamConnection;
  readonly #responseHeaders: ResponseHeaders;
  readonly #resolve: (attempt: Attempt) => void;
  #bytes = 0;
  #started = false;
  /** The head was handed to the response and no body chunk went with it yet. */
  #headPending = false;
  /** Set while the connection is paused for this client (made at the first stall only). */
  #onDrain: (() => void) | undefined;
  #waitsForDrain = false;

  constructor(
    res: AnyResponse,
    server: UpstreamServer,
    group: UpstreamGroupPool,
    client: ClientWatch,
    connection: UpstreamConnection,
    responseHeaders: ResponseHeaders,
    resolve: (attempt: Attempt) => void,
  ) {
    this.#res = res;
    this.#server = server;
    this.#group = group;
    this.#client = client;
    this.#connection = connection;
    this.#responseHeaders = responseHeaders;
    this.#resolve = resolve;
  }

  onHead(status: number, rawHeaders: string[]): void {
    this.#started = true;
    this.#group.markUp(this.#server);
    const headers = clientResponseHeaderList(rawHeaders, 'stream' in this.#res, this.#responseHeaders);
    try {
      common(this.#res).writeHead(status, headers);
    } catch (error) {
      // A head node:http or node:http2 refuses to send (this runs inside the parser's callback: nothing may escape).
      // The refused names go, so our own error page can be written instead.
      for (let i = 0; i < headers.length; i += 2) this.#res.removeHeader(headers[i]!);
      this.#started = false;
      this.#connection.abort(
        new UpstreamError('ERR_UPSTREAM_HEAD', `the upstream's response head cannot be relayed: ${error}`),
      );
      return;
    }
    this.#headPending = true;
  }

  onData(chunk: Buffer, written?: () => void): boolean {
    this.#bytes += chunk.length;
    this.#headPending = false;
    if (common(this.#res).write(chunk, written)) return true;
    // The client reads slower than the upstream sends: the connection pauses until the response drains (send_timeout).
    if (!this.#waitsForDrain) {
      this.#waitsForDrain = true;
      this.#onDrain ??= () => {
        this.#waitsForDrain = false;
        this.#connection.resume();
      };
      this.#res.once('drain', this.#onDrain);
    }
    return false;
  }

  onReadDone(): void {
    // Headers leave with the first body chunk, in one TLS record and one syscall (flushing them alone cost a second
    // write per response). A read that brought the head and no body (a slow upstream, server-sent events) flushes
    // them at once.
    if (!this.#headPending) return;
    this.#headPending = false;
    const res = this.#res;
    if (!res.headersSent && 'flushHeaders' in res) res.flushHeaders();
  }

  onEnd(): void {
    this.#res.end();
    this.#finish();
  }

  onFail(error: Error, retry: Retry): void {
    if (this.#client.gone || errorCodeFor(error) === undefined) {
      // The access log names an upstream only when the request did reach it.
      this.#finish({ clientClosed: true, ...(this.#connection.written ? {} : { upstream: undefined }) });
      return;
    }
    if (this.#started || this.#res.headersSent) {
      // Mid-stream failure: the client must see a broken response, not a short one that looks complete.
      this.#finish({ cause: error });
      if ('stream' in this.#res) resetStream(this.#res.stream);
      else this.#res.destroy(error);
      return;
    }
    this.#finish({ error: errorCodeFor(error), cause: error }, retry);
  }

  cancel(): void {
    this.#connection.abort(new ClientClosedError('the client closed the request'));
  }

  #finish(outcome?: Omit<ForwardResult, 'bytes'>, retry: Retry = 'no'): void {
    this.#client.cancels = undefined;
    if (this.#waitsForDrain) this.#res.off('drain', this.#onDrain!);
    const result: ForwardResult = { upstream: this.#server.origin, bytes: this.#bytes };
    if (outcome !== undefined) Object.assign(result, outcome);
    this.#resolve({ result, retry });
  }
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

// What happens upstream when the client of a proxied request goes away first. The rule, as nginx applies it
// (without proxy_ignore_client_abort): once the client cannot take the response any more (its HTTP/2 stream was
// reset, its HTTP/1.1 connection closed), the upstream exchange is aborted at once and its connection is closed,
// so no request nobody waits for holds an upstream connection; and a request body the client did not finish is
// never delivered upstream as a finished one: the upstream sees its connection cut mid-body, a failed request.
// Kept in this one module so that whatever client talks to the upstream keeps the same semantics.
import { Readable } from 'node:stream';
import type { AnyRequest, AnyResponse } from '../base/types.ts';

export class ClientClosedError extends Error {
  code = 'ERR_CLIENT_CLOSED';
}
export class BodyTooLargeError extends Error {
  code = 'ERR_BODY_TOO_LARGE';
}
export class BodyTimeoutError extends Error {
  code = 'ERR_BODY_TIMEOUT';
}

/** True once the client cannot take this response any more: its HTTP/2 stream is closed, its HTTP/1.1 connection gone. */
export function clientGone(req: AnyRequest, res: AnyResponse): boolean {
  return 'stream' in req ? req.stream.closed || req.stream.destroyed : res.destroyed || req.socket.destroyed;
}

/** What the client's going away cancels: its wait for an upstream connection, then its upstream exchange. */
export interface Cancellable {
  cancel(): void;
}

/** The client side of one proxied exchange, from the moment forwarding starts until settle(). */
export interface ClientWatch {
  /** True once the client went away. */
  readonly gone: boolean;
  /**
   * What is cancelled when the client goes away, set by what waits on the client at the time. An object, not a
   * closure over the exchange: storing such a closure per request cost about 15 % more CPU (more of every request
   * survived the young-generation GC).
   */
  cancels: Cancellable | undefined;
  settle(): void;
}

/**
 * Watches for the client going away: an HTTP/2 reset is seen as the stream's 'aborted' event, which nghttp2 raises
 * while it reads the RST_STREAM frame; a closed HTTP/1.1 connection as the response's 'close'. (The HTTP/2 response
 * reports itself "finished" after a reset, so that is never the test.)
 */
export function watchClient(req: AnyRequest, res: AnyResponse): ClientWatch {
  const h2 = 'stream' in req ? req.stream : undefined;
  const watch = {
    gone: clientGone(req, res),
    cancels: undefined as Cancellable | undefined,
    settle() {
      h2?.off('aborted', leave);
      res.off('close', leave);
    },
  };
  function leave(): void {
    if (watch.gone) return;
    watch.gone = true;
    watch.cancels?.cancel();
  }
  h2?.once('aborted', leave);
  res.once('close', leave);
  return watch;
}

/**
 * Whether the client sent its whole body: HTTP/1.1 a complete message, HTTP/2 END_STREAM. A reset ends the HTTP/2
 * compatibility request as well (and RST_STREAM NO_ERROR even the stream); the stream's aborted flag tells them apart.
 */
function finishedByClient(req: AnyRequest): boolean {
  return 'stream' in req ? req.stream.readableEnded && !req.stream.aborted : req.complete;
}

/**
 * The request body as the upstream receives it. It ends only when the client finished it, and fails (so the upstream
 * request fails and its connection is closed) when the client goes away mid-body, when it grows past `maxBytes`
 * (nginx cuts chunked bodies off the same way), or when no chunk arrives for `idleMs` while one is wanted
 * (nginx client_body_timeout: the time between two reads, not for the whole body).
 */
export function clientBody(req: AnyRequest, options: { maxBytes: number; idleMs: number }): Readable {
  let received = 0;
  let ended = false;
  // Only while the reader wants more does a silent client count against the timeout; backpressure from the
  // upstream does not. One timer, refreshed per chunk, ignored while not wanted.
  let wanted = false;
  const timer = setTimeout(() => {
    if (wanted) fail(new BodyTimeoutError(`no request body data for ${options.idleMs} ms`));
  }, options.idleMs);
  timer.unref();
  const want = () => {
    wanted = true;
    timer.refresh();
  };
  const body = new Readable({
    read() {
      if (!ended) {
        want();
        req.resume();
      }
    },
    destroy(error, callback) {
      cleanup();
      callback(error);
    },
  });
  const fail = (error: Error) => {
    if (!ended) {
      ended = true;
      body.destroy(error);
    }
  };
  const onData = (chunk: Buffer) => {
    wanted = false;
    received += chunk.length;
    if (received > options.maxBytes)
      return fail(new BodyTooLargeError(`request body exceeds ${options.maxBytes} bytes`));
    if (body.push(chunk)) want();
    else req.pause();
  };
  const onEnd = () => {
    if (!finishedByClient(req))
      return fail(new ClientClosedError('the client reset the request before its body was complete'));
    ended = true;
    cleanup();
    body.push(null);
  };
  const onGone = () =>
    fail(new ClientClosedError('the client closed the connection before the request body was complete'));
  const cleanup = () => {
    clearTimeout(timer);
    req.off('data', onData).off('end', onEnd).off('error', onGone).off('close', onGone);
  };
  req.on('data', onData).once('end', onEnd).once('error', onGone).once('close', onGone);
  // Whoever reads the body (the upstream connection, readBody) gets its error; while nobody does yet (the request
  // waits for an upstream connection), an 'error' without a listener would be an uncaught exception.
  body.on('error', () => {});
  return body;
}

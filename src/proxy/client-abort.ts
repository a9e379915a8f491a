// What happens upstream when the client of a proxied request goes away first. The rule, as nginx applies it
// (without proxy_ignore_client_abort): once the client cannot take the response any more (its HTTP/2 stream was
// reset, its HTTP/1.1 connection closed), the upstream exchange is aborted at once and its connection is closed,
// so no request nobody waits for holds an upstream connection.
// Kept in this one module so that whatever client talks to the upstream keeps the same semantics.
import type { AnyRequest, AnyResponse } from '../http/types.ts';

export class ClientClosedError extends Error { code = 'ERR_CLIENT_CLOSED'; }

/** True once the client cannot take this response any more: its HTTP/2 stream is closed, its HTTP/1.1 connection gone. */
export function clientGone(req: AnyRequest, res: AnyResponse): boolean {
  return 'stream' in req ? req.stream.closed || req.stream.destroyed : res.destroyed || req.socket.destroyed;
}

/**
 * A signal that fires when the client goes away before `settle()` is called. An HTTP/2 reset is seen as the stream's
 * 'aborted' event, which nghttp2 raises while it reads the RST_STREAM frame; a closed HTTP/1.1 connection as the
 * response's 'close'. (The HTTP/2 response reports itself "finished" after a reset, so that is never the test.)
 */
export function watchClient(req: AnyRequest, res: AnyResponse): { signal: AbortSignal; settle(): void } {
  const controller = new AbortController();
  const abort = () => controller.abort(new ClientClosedError('the client closed the request'));
  if (clientGone(req, res)) abort();
  const h2 = 'stream' in req ? req.stream : undefined;
  h2?.once('aborted', abort);
  res.once('close', abort);
  return {
    signal: controller.signal,
    settle() {
      h2?.off('aborted', abort);
      res.off('close', abort);
    },
  };
}

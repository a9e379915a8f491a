// Requests and responses arrive from HTTP/1.1 (node:http) and HTTP/2 (node:http2 compatibility API) alike.
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Http2ServerRequest, Http2ServerResponse } from 'node:http2';

export type AnyRequest = IncomingMessage | Http2ServerRequest;
export type AnyResponse = ServerResponse | Http2ServerResponse;

/** An answer that comes at once when it can, else as a promise: the request path awaits only the latter (each await
 *  is a turn of the microtask queue). */
export type Answer<T> = T | Promise<T>;

/** The two response kinds share writeHead/write/end with the same meaning; TypeScript cannot call through the union. */
export function common(res: AnyResponse): ServerResponse {
  return res as ServerResponse;
}

/** The peer's address; HTTP/2 compatibility requests reach it through their session's socket. */
export function clientAddress(req: AnyRequest): string {
  const socket = 'stream' in req ? req.stream.session?.socket : req.socket;
  return socket?.remoteAddress ?? '';
}

/** Answers plain-HTTP requests before the HTTPS redirect (ACME HTTP-01 challenges); returns true when it answered. */
export type PlainHttpResponder = (req: AnyRequest, res: AnyResponse, requestId: string) => boolean;

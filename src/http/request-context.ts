// What every request carries through the path: its id, its site and route once known, and what the access log needs.
import crypto from 'node:crypto';
import type { TLSSocket } from 'node:tls';
import type { Route } from '../config/model.ts';
import type { SiteRuntime } from './runtime.ts';
import type { ErrorCode } from '../base/errors.ts';
import { clientAddress, type AnyRequest } from '../base/types.ts';

export interface RequestContext {
  id: string;
  startedAt: number;
  /** The peer's address, taken when the request starts (an HTTP/2 session may be gone when the log line is written). */
  client: string;
  site?: SiteRuntime;
  route?: Route;
  /** The normalized path, percent-decoded: what routes and deny rules are matched against (normalize-path.ts). */
  pathname?: string;
  upstream?: string;
  /** The upstream group the request was proxied to (it reached a server, or failed for the upstream): the per-upstream metrics. */
  group?: string;
  /** The path the upstream received when rewrite_prefix changed it. */
  upstreamPath?: string;
  /** The signed-in user, for the access log. */
  user?: string;
  bytes: number;
  error?: ErrorCode;
  cause?: Error;
}

export function beginRequest(req: AnyRequest): RequestContext {
  return {
    id: crypto.randomUUID().slice(0, 13).replace('-', ''),
    startedAt: performance.now(),
    client: clientAddress(req),
    bytes: 0,
  };
}

/** The TLS server name the client sent, for HTTP/1.1 and HTTP/2 requests alike. */
export function tlsServername(req: AnyRequest): string | undefined {
  const socket = ('stream' in req ? req.stream.session?.socket : req.socket) as TLSSocket | undefined;
  const name = socket?.servername;
  return typeof name === 'string' && name !== '' ? name.toLowerCase() : undefined;
}

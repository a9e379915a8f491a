// What every request carries through the path: its id, its site and route once known, and what the access log needs.
import crypto from 'node:crypto';
import type { TLSSocket } from 'node:tls';
import type { Route } from '../config/load.ts';
import type { SiteRuntime } from '../runtime/runtime.ts';
import type { ErrorCode } from './errors.ts';
import { clientAddress, type AnyRequest } from './types.ts';

export interface RequestContext {
  id: string;
  startedAt: number;
  /** The peer's address, taken when the request starts (an HTTP/2 session may be gone when the log line is written). */
  client: string;
  site?: SiteRuntime;
  route?: Route;
  /** Decoded, dot-resolved, slash-merged path: what routes and deny rules are matched against. */
  pathname?: string;
  upstream?: string;
  /** The signed-in user, for the access log. */
  user?: string;
  bytes: number;
  error?: ErrorCode;
  cause?: Error;
}

export function beginRequest(req: AnyRequest): RequestContext {
  return { id: crypto.randomUUID().slice(0, 13).replace('-', ''), startedAt: performance.now(), client: clientAddress(req), bytes: 0 };
}

/** The TLS server name the client sent, for HTTP/1.1 and HTTP/2 requests alike. */
export function tlsServername(req: AnyRequest): string | undefined {
  const socket = ('stream' in req ? req.stream.session?.socket : req.socket) as TLSSocket | undefined;
  const name = socket?.servername;
  return typeof name === 'string' && name !== '' ? name.toLowerCase() : undefined;
}

/**
 * The path that routing and deny rules see: percent-decoded, dot segments resolved, repeated slashes merged
 * (as nginx does before matching locations). Undefined when the path cannot be decoded or holds a NUL byte,
 * which is answered 400. Matching on anything else lets "/%2e%2e/" or "//admin" slip past a rule.
 */
export function normalizePath(target: string): string | undefined {
  if (!target.startsWith('/')) return undefined;
  const end = target.search(/[?#]/);
  let path: string;
  try {
    path = decodeURIComponent(end < 0 ? target : target.slice(0, end));
  } catch {
    return undefined;
  }
  if (path.includes('\0')) return undefined;
  const segments: string[] = [];
  for (const segment of path.split('/')) {
    if (segment === '..') segments.pop();
    else if (segment !== '.' && segment !== '') segments.push(segment);
  }
  const trailing = path.endsWith('/') || path.endsWith('/.') || path.endsWith('/..');
  return `/${segments.join('/')}${trailing && segments.length > 0 ? '/' : ''}`;
}

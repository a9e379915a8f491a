// The one mapping from a failed upstream exchange (an errno, our upstream client's or http-proxy-3's code, llhttp's
// HPE_* parse errors, or our own client-side errors) to the error code Gatehouse answers with, for proxied requests and WebSocket upgrades alike: the same
// failure gets the same status and code whichever way the client came (nginx: 502 when the upstream cannot be reached
// or resets, 504 when it times out).
import type { ErrorCode } from '../base/errors.ts';
import { BodyTimeoutError, BodyTooLargeError, ClientClosedError } from './client-abort.ts';

/** A failure our upstream client names itself (timeouts, a response that breaks HTTP/1.1 framing, a head it refuses). */
export class UpstreamError extends Error {
  readonly code: string;
  constructor(code: string, message: string) {
    super(message);
    this.code = code;
  }
}

/**
 * Failures where the request never reached the server: safe to try the next one, and the server is marked down.
 * The connect timeout (ECONNECT_TIMEOUT) of our upstream client and of http-proxy-3 included.
 */
const CONNECT_FAILURES = new Set([
  'ECONNREFUSED',
  'EHOSTUNREACH',
  'ENETUNREACH',
  'ENOTFOUND',
  'EAI_AGAIN',
  'ECONNECT_TIMEOUT',
]);
/** The upstream did not connect, answer or send its body in time (ERR_UPSTREAM_TIMEOUT: our read_timeout). */
const TIMEOUTS = new Set(['ECONNECT_TIMEOUT', 'ETIMEDOUT', 'ERR_UPSTREAM_TIMEOUT']);

/** True when the request never reached the server (so it may go to the next one). */
export function isConnectFailure(error: Error | undefined): boolean {
  return CONNECT_FAILURES.has((error as NodeJS.ErrnoException | undefined)?.code ?? '');
}

/** Our answer for a failed exchange; undefined when the client itself went away (nobody is left to answer). */
export function errorCodeFor(error: Error): ErrorCode | undefined {
  const cause = (error as { cause?: unknown }).cause;
  if (error instanceof ClientClosedError || cause instanceof ClientClosedError) return undefined;
  if (error instanceof BodyTooLargeError || cause instanceof BodyTooLargeError) return 'ERR_BODY_TOO_LARGE';
  if (error instanceof BodyTimeoutError || cause instanceof BodyTimeoutError) return 'ERR_BODY_TIMEOUT';
  const code = (error as NodeJS.ErrnoException).code ?? '';
  if (TIMEOUTS.has(code)) return 'ERR_UPSTREAM_TIMEOUT';
  if (CONNECT_FAILURES.has(code)) return 'ERR_UPSTREAM_UNREACHABLE';
  return 'ERR_UPSTREAM_RESET';
}

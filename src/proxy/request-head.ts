// The request head an upstream receives, serialized once into one string (written latin1, byte for byte as Node's
// parser read the client's header values) so it leaves with the first body bytes in one write.
import { UpstreamError } from './upstream-errors.ts';

/** How the body is framed upstream: none, a known length, or chunked (RFC 9112 §7.1) when the client's length is unknown. */
export type BodyFraming = { kind: 'none' } | { kind: 'length'; length: number } | { kind: 'chunked' };

/** Methods whose requests carry content by definition: an empty one still says `content-length: 0` (RFC 9110 §8.6). */
const PAYLOAD_METHODS = new Set(['POST', 'PUT', 'PATCH']);

// Node's own rules for what may go out in a header value or a request target (lib/_http_common.js, _http_client.js):
// a value with CR, LF or NUL would let one header become two (header injection), so such a request is refused.
const INVALID_VALUE = /[^\t\x20-\x7e\x80-\xff]/;
const INVALID_TARGET = /[^\u0021-\u00ff]/;
const TOKEN = /^[\^_`a-zA-Z\-0-9!#$%&'*+.|~]+$/;

/**
 * `METHOD path HTTP/1.1`, the headers, and the framing header for `framing`; the client's own Content-Length is
 * replaced by the framing's (a buffered body's length is the one that counts).
 */
export function serializeRequestHead(
  method: string,
  path: string,
  headers: Record<string, string | string[]>,
  framing: BodyFraming,
): string {
  if (!TOKEN.test(method) || INVALID_TARGET.test(path))
    throw new UpstreamError('ERR_INVALID_REQUEST_HEAD', 'invalid method or request target for the upstream');
  let head = `${method} ${path} HTTP/1.1\r\n`;
  for (const name in headers) {
    if (name === 'content-length') continue;
    const value = headers[name]!;
    if (typeof value === 'string') head += line(name, value);
    else for (const one of value) head += line(name, one);
  }
  if (framing.kind === 'length') head += `content-length: ${framing.length}\r\n`;
  else if (framing.kind === 'chunked') head += 'transfer-encoding: chunked\r\n';
  else if (PAYLOAD_METHODS.has(method)) head += 'content-length: 0\r\n';
  return head + '\r\n';
}

function line(name: string, value: string): string {
  if (INVALID_VALUE.test(value))
    throw new UpstreamError('ERR_INVALID_REQUEST_HEAD', `invalid character in the value of header ${name}`);
  return `${name}: ${value}\r\n`;
}

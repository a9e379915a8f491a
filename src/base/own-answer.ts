// What every answer Gatehouse writes itself carries (error pages and JSON errors, /oauth2/* pages and redirects, login
// challenges, `status` routes, ACME tokens, the redirect to HTTPS; never an upstream's answer, which keeps its own):
// - x-request-id: the id of the request's log line (`req_id`), so a user's report finds the line;
// - cache-control: no-store: these answers depend on a session, a one-time login state or the configuration of the
//   moment, and no browser or shared cache may keep or replay one (RFC 9111 §5.2.2.5);
// - content-type and content-length of the body (`content-length: 0` without one).
// The bottom floor: imports only Node's types, so every folder may use it.
import type { OutgoingHttpHeaders } from 'node:http';

const CONTENT_TYPES = { html: 'text/html; charset=utf-8', json: 'application/json', text: 'text/plain' } as const;

export interface OwnBody {
  type: keyof typeof CONTENT_TYPES;
  text: string;
}

/** What an own answer calls on a response; node:http's and node:http2's (compatibility API) responses both have it. */
export interface OwnResponse {
  writeHead(status: number, headers: OutgoingHttpHeaders): unknown;
  end(chunk: string): unknown;
}

/** The headers of an own answer. `extra` comes first, so it can never drop the request id or no-store. */
export function ownHeaders(requestId: string, extra: OutgoingHttpHeaders = {}, body?: OwnBody): OutgoingHttpHeaders {
  return {
    ...(body ? { 'content-type': CONTENT_TYPES[body.type] } : {}),
    'content-length': body ? Buffer.byteLength(body.text) : 0,
    ...extra,
    'cache-control': 'no-store',
    'x-request-id': requestId,
  };
}

/** Writes a whole own answer. `omitBody` for HEAD: the headers still describe the body a GET gets (RFC 9110 §9.3.2). */
export function sendOwn(
  res: OwnResponse,
  status: number,
  requestId: string,
  options: { headers?: OutgoingHttpHeaders; body?: OwnBody; omitBody?: boolean } = {},
): void {
  res.writeHead(status, ownHeaders(requestId, options.headers, options.body));
  res.end(options.body && !options.omitBody ? options.body.text : '');
}

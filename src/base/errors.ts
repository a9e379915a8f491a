// Every error response Gatehouse itself produces comes from this table and is rendered here:
// HTML for browsers, JSON when the client asks for it, always with the request id that is also in the log line.
import { sendOwn, type OwnBody } from './own-answer.ts';
import { html, renderPage } from './page.ts';
import type { AnyResponse } from './types.ts';

export const ERRORS = {
  ERR_HTTP_BAD_REQUEST: { status: 400, title: 'Bad Request', detail: 'The request could not be understood.' },
  ERR_PATH_REFUSED: { status: 400, title: 'Bad Request', detail: 'The request path is malformed or ambiguous.' },
  ERR_ROUTE_DENIED: { status: 403, title: 'Forbidden', detail: 'Access to this path is denied.' },
  ERR_IP_DENIED: { status: 403, title: 'Forbidden', detail: 'Access from your network address is denied.' },
  ERR_ROUTE_NOT_FOUND: { status: 404, title: 'Not Found', detail: 'No route matches this path.' },
  ERR_ACME_UNKNOWN_TOKEN: { status: 404, title: 'Not Found', detail: 'No ACME challenge with this token is pending.' },
  ERR_STATIC_NOT_FOUND: { status: 404, title: 'Not Found', detail: 'The file does not exist.' },
  ERR_HTTP_METHOD: {
    status: 405,
    title: 'Method Not Allowed',
    detail: 'This route serves files with GET and HEAD only.',
    allow: 'GET, HEAD',
  },
  // TRACE echoes a request back, cookies and credentials included (cross-site tracing); nginx answers it 405 too.
  ERR_HTTP_TRACE: {
    status: 405,
    title: 'Method Not Allowed',
    detail: 'TRACE and TRACK are not served.',
    allow: 'GET, HEAD, POST, PUT, PATCH, DELETE, OPTIONS',
  },
  ERR_BODY_TIMEOUT: { status: 408, title: 'Request Timeout', detail: 'The request body did not arrive in time.' },
  ERR_BODY_TOO_LARGE: {
    status: 413,
    title: 'Content Too Large',
    detail: 'The request body exceeds the size this route accepts.',
  },
  ERR_RATE_LIMITED: {
    status: 429,
    title: 'Too Many Requests',
    detail: 'Too many requests from your address. Try again shortly.',
  },
  ERR_LOGOUT_TOKEN_INVALID: {
    status: 400,
    title: 'Bad Request',
    detail: 'The logout token is missing or not valid.',
  },
  ERR_LOGOUT_METHOD: {
    status: 405,
    title: 'Method Not Allowed',
    detail: 'Back-channel logout takes a POST with a logout_token.',
    allow: 'POST',
  },
  ERR_AUTH_REQUIRED: { status: 401, title: 'Unauthorized', detail: 'Sign in to use this site.' },
  ERR_AUTH_FORBIDDEN: { status: 403, title: 'Forbidden', detail: 'Your account may not use this site.' },
  ERR_AUTH_PROVIDER_REFUSED: { status: 403, title: 'Forbidden', detail: 'The identity provider did not sign you in.' },
  ERR_AUTH_STATE_INVALID: {
    status: 400,
    title: 'Bad Request',
    detail: 'This login link is unknown, was already used or has expired. Start again from the page you wanted.',
  },
  ERR_AUTH_REDIRECT_INVALID: { status: 400, title: 'Bad Request', detail: 'The return address is not allowed.' },
  ERR_AUTH_LOGIN_FAILED: {
    status: 502,
    title: 'Bad Gateway',
    detail: 'The login could not be completed with the identity provider.',
  },
  ERR_AUTH_PROVIDER_UNAVAILABLE: {
    status: 503,
    title: 'Service Unavailable',
    detail: 'The identity provider cannot be reached right now.',
  },
  // The shared session store (Redis) cannot be reached: the session is not ended and its cookie stays.
  ERR_ACME_STORE_UNAVAILABLE: {
    status: 503,
    title: 'Service Unavailable',
    detail: 'The ACME challenge store cannot be reached; try again shortly.',
  },
  ERR_STORE_UNAVAILABLE: {
    status: 503,
    title: 'Service Unavailable',
    detail:
      'Sign-in is briefly unavailable: the session store cannot be reached. Your session is kept; try again shortly.',
  },
  ERR_TLS_MISDIRECTED: {
    status: 421,
    title: 'Misdirected Request',
    detail: 'The Host header does not match the TLS server name.',
  },
  ERR_SITE_UNKNOWN: { status: 421, title: 'Misdirected Request', detail: 'No site is configured for this host name.' },
  ERR_UPSTREAM_UNREACHABLE: { status: 502, title: 'Bad Gateway', detail: 'The upstream server could not be reached.' },
  ERR_UPSTREAM_DOWN: {
    status: 502,
    title: 'Bad Gateway',
    detail: 'No upstream server is healthy right now.',
  },
  ERR_UPSTREAM_RESET: {
    status: 502,
    title: 'Bad Gateway',
    detail: 'The upstream server closed the connection or sent an invalid response.',
  },
  ERR_UPSTREAM_BUSY: {
    status: 503,
    title: 'Service Unavailable',
    detail: 'The upstream server is busy with other requests. Try again shortly.',
  },
  ERR_UPSTREAM_TIMEOUT: {
    status: 504,
    title: 'Gateway Timeout',
    detail: 'The upstream server did not answer in time.',
  },
  ERR_SHUTTING_DOWN: { status: 503, title: 'Service Unavailable', detail: 'The server is shutting down.' },
  ERR_INTERNAL: { status: 500, title: 'Internal Server Error', detail: 'Something went wrong on our side.' },
} as const;

export type ErrorCode = keyof typeof ERRORS;

/** A 405 names the methods that are allowed (RFC 9110 §15.5.6). */
type ErrorEntry = { status: number; title: string; detail: string; allow?: string };

export function statusOf(code: ErrorCode): number {
  return ERRORS[code].status;
}

/** Renders one of our errors. Does nothing when the response has already started (the caller then aborts the stream). */
export function sendError(
  req: { headers: Record<string, string | string[] | undefined>; method?: string },
  res: AnyResponse,
  code: ErrorCode,
  requestId: string,
  extraHeaders: Record<string, string | string[]> = {},
  options: { detail?: string; json?: boolean } = {},
): void {
  if (res.headersSent || res.destroyed) return;
  const { status, title, allow }: ErrorEntry = ERRORS[code];
  const detail = options.detail ?? ERRORS[code].detail;
  const body: OwnBody =
    options.json || prefersJson(req.headers.accept)
      ? { type: 'json', text: JSON.stringify({ error: code, status, message: detail, request_id: requestId }) }
      : { type: 'html', text: errorPage(code, status, title, detail, requestId) };
  sendOwn(res, status, requestId, {
    headers: { ...(allow ? { allow } : {}), ...extraHeaders },
    body,
    omitBody: req.method === 'HEAD',
  });
}

function errorPage(code: ErrorCode, status: number, title: string, detail: string, requestId: string): string {
  return renderPage({
    title: `${status} ${title}`,
    body: html`<h1>${status} ${title}</h1><p>${detail}</p><p><small>Request id: <code>${requestId}</code> (${code})</small></p>`,
  });
}

function prefersJson(accept: string | string[] | undefined): boolean {
  const text = Array.isArray(accept) ? accept.join(',') : (accept ?? '');
  return /\bapplication\/(?:[\w.+-]+\+)?json\b/i.test(text) && !/\btext\/html\b/i.test(text);
}

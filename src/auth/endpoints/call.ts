// What every /oauth2/* endpoint receives and answers, and the steps several of them share. Each endpoint is one
// file of this folder with the signature of `Endpoint`; ../routes.ts is the table of paths.
import { sendError, type ErrorCode } from '../../base/errors.ts';
import type { AnyRequest, AnyResponse } from '../../base/types.ts';
import type { Logger } from '../../observability/logger.ts';
import type { Session } from '../../session/sessions.ts';
import { sendProviderUnavailable } from '../challenge.ts';
import { validateReturnUrl } from '../redirect.ts';
import { PROVIDER_UNAVAILABLE } from '../authenticated.ts';
import type { SiteAuth } from '../site-auth.ts';

/** One request to an endpoint. origin: scheme://host[:port] as the client addressed us; url: the request's URL on it. */
export interface EndpointCall {
  auth: SiteAuth;
  req: AnyRequest;
  res: AnyResponse;
  requestId: string;
  log: Logger;
  host: string;
  origin: string;
  url: URL;
}

/** What the access log records of the answer: the error code and its cause, when the answer was one. */
export interface OAuth2Outcome {
  error?: ErrorCode;
  cause?: Error;
}

export type Endpoint = (call: EndpointCall) => Promise<OAuth2Outcome>;

/** Answers with one of our errors; a refused /oauth2/auth or /oauth2/userinfo answers in JSON to any client. */
export function refuse(
  call: EndpointCall,
  code: ErrorCode,
  options: { detail?: string; cause?: Error; headers?: Record<string, string[]> } = {},
): OAuth2Outcome {
  sendError(call.req, call.res, code, call.requestId, options.headers, {
    detail: options.detail,
    json: code === 'ERR_AUTH_REQUIRED' || code === 'ERR_LOGOUT_TOKEN_INVALID' || code === 'ERR_LOGOUT_METHOD',
  });
  return { error: code, cause: options.cause };
}

/** Where to go afterwards: `rd` when it stays on our sites (or the allowed domains), `fallback` without `rd`; undefined when refused. */
export function returnTo(call: EndpointCall, fallback = `${call.origin}/`): string | undefined {
  const rd = call.url.searchParams.get('rd');
  const { siteNames, settings } = call.auth;
  return rd === null ? fallback : validateReturnUrl(rd, call.origin, siteNames, settings.whitelistDomains);
}

/** The session of a signed-in user the policy allows; otherwise the refusal has been answered (401, 403 or 503). */
export async function allowedSession(call: EndpointCall): Promise<{ session: Session } | OAuth2Outcome> {
  const session = await call.auth.authenticate(call.req.headers);
  if (session === PROVIDER_UNAVAILABLE) return { error: sendProviderUnavailable(call.req, call.res, call.requestId) };
  if (!session) return refuse(call, 'ERR_AUTH_REQUIRED');
  const refusal = call.auth.policy.authorize(session.identity);
  if (refusal) return refuse(call, 'ERR_AUTH_FORBIDDEN', { detail: `${refusal.message} (rule: ${refusal.rule})` });
  return { session };
}

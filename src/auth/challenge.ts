// What an anonymous request gets: a login redirect only for a top-level navigation of a page; everything else
// (fetch/XHR, API routes, sub-resources such as favicons and images, non-GET) gets 401, so a script sees a clean
// error instead of a cross-origin redirect, and a favicon the browser fetches on its own never starts a second login
// (request destinations: https://fetch.spec.whatwg.org/#concept-request-destination).
import { sendOwn } from '../base/own-answer.ts';
import type { AuthSettings } from '../config/model.ts';
import { sendError, type ErrorCode } from '../base/errors.ts';
import type { AnyRequest, AnyResponse } from '../base/types.ts';
import { startLogin } from './oidc/login.ts';
import type { SiteAuth } from './site-auth.ts';

export function wantsLoginRedirect(req: AnyRequest, pathname: string, settings: AuthSettings): boolean {
  const method = req.method ?? 'GET';
  if (method !== 'GET' && method !== 'HEAD') return false;
  if (settings.apiRoutes.some((r) => r.test(pathname))) return false;
  const h = req.headers;
  if (h['x-requested-with'] !== undefined) return false;
  const mode = h['sec-fetch-mode'];
  if (mode !== undefined)
    return mode === 'navigate' && (h['sec-fetch-dest'] === undefined || h['sec-fetch-dest'] === 'document');
  // No fetch metadata (older clients, curl): only an explicit wish for HTML is a page navigation.
  const accept = String(h.accept ?? '');
  return /\btext\/html\b/i.test(accept) && !/^\s*application\/(?:[\w.+-]+\+)?json/i.test(accept);
}

/** Answers an anonymous request: 302 into the login for a page navigation, 401 (JSON) for everything else. */
export async function sendChallenge(
  auth: SiteAuth,
  req: AnyRequest,
  res: AnyResponse,
  requestId: string,
  pathname: string,
  origin: string,
): Promise<ErrorCode | undefined> {
  if (!wantsLoginRedirect(req, pathname, auth.settings)) {
    sendError(req, res, 'ERR_AUTH_REQUIRED', requestId, {}, { json: true });
    return 'ERR_AUTH_REQUIRED';
  }
  // Concatenated, not resolved: new URL("//evil.com", origin) would leave the site.
  const returnTo = new URL(origin + (req.url ?? '/')).href;
  return redirectToLogin(auth, req, res, requestId, origin, returnTo);
}

/** 503 with Retry-After: the provider cannot be reached for a login, or did not renew an expired access token in time. */
export function sendProviderUnavailable(req: AnyRequest, res: AnyResponse, requestId: string): ErrorCode {
  sendError(req, res, 'ERR_AUTH_PROVIDER_UNAVAILABLE', requestId, { 'retry-after': '5' });
  return 'ERR_AUTH_PROVIDER_UNAVAILABLE';
}

export async function redirectToLogin(
  auth: SiteAuth,
  req: AnyRequest,
  res: AnyResponse,
  requestId: string,
  origin: string,
  returnTo: string,
): Promise<ErrorCode | undefined> {
  let login;
  try {
    login = await startLogin(
      auth.oidc,
      auth.loginCookies,
      auth.settings.redirectUrl ?? `${origin}/oauth2/callback`,
      returnTo,
      req.headers.cookie,
    );
  } catch {
    return sendProviderUnavailable(req, res, requestId);
  }
  sendOwn(res, 302, requestId, { headers: { location: login.location, 'set-cookie': login.setCookies } });
  return undefined;
}

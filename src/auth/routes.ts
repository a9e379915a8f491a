// The /oauth2/* endpoints of a site with [auth] (oauth2-proxy's paths): start, callback, sign_in, sign_out,
// auth (202/401/403 for anything still doing auth_request), userinfo, and frontchannel_logout.
import { sendError, type ErrorCode } from '../http/errors.ts';
import { common, type AnyRequest, type AnyResponse } from '../http/types.ts';
import type { Logger } from '../observability/logger.ts';
import { clearCookie, readCookie, setCookie } from '../session/cookies.ts';
import { redirectToLogin, sendProviderUnavailable } from './challenge.ts';
import { identityHeaders, userinfo } from './identity-headers.ts';
import { endSessionUrl, redeemCallback } from './oidc/callback.ts';
import { providerErrorFields } from './oidc/client.ts';
import { requestOrigin, validateReturnUrl } from './redirect.ts';
import { PROVIDER_UNAVAILABLE, type SiteAuth } from './site-auth.ts';

export interface OAuth2Outcome { error?: ErrorCode; cause?: Error }

export async function handleOAuth2(auth: SiteAuth, req: AnyRequest, res: AnyResponse, requestId: string, pathname: string, host: string, log: Logger): Promise<OAuth2Outcome> {
  const origin = requestOrigin(req.headers, host);
  const url = new URL(origin + (req.url ?? '/'));
  const refuse = (code: ErrorCode, detail?: string, cause?: Error): OAuth2Outcome => {
    sendError(req, res, code, requestId, {}, { detail, json: code === 'ERR_AUTH_REQUIRED' });
    return { error: code, cause };
  };
  const returnTo = (fallback: string): string | undefined => {
    const rd = url.searchParams.get('rd');
    return rd === null ? fallback : validateReturnUrl(rd, origin, auth.siteNames, auth.settings.whitelistDomains);
  };

  switch (pathname) {
    case '/oauth2/start': {
      const target = returnTo(`${origin}/`);
      if (!target) return refuse('ERR_AUTH_REDIRECT_INVALID');
      return { error: await redirectToLogin(auth, req, res, requestId, origin, target) };
    }

    case '/oauth2/callback': {
      const state = url.searchParams.get('state') ?? '';
      const login = state ? auth.loginCookies.find(req.headers.cookie, state) : undefined;
      const clearLogin = state ? [clearCookie(auth.loginCookies.nameFor(state))] : [];
      const providerError = url.searchParams.get('error');
      if (providerError) {
        log.info({ req_id: requestId, provider_error: providerError.slice(0, 64), description: url.searchParams.get('error_description')?.slice(0, 300) }, 'provider refused the login');
        sendError(req, res, 'ERR_AUTH_PROVIDER_REFUSED', requestId, { 'set-cookie': clearLogin }, { detail: `The identity provider answered "${providerError.replace(/[^\w.-]/g, '').slice(0, 64)}".` });
        return { error: 'ERR_AUTH_PROVIDER_REFUSED' };
      }
      if (!login) {
        sendError(req, res, 'ERR_AUTH_STATE_INVALID', requestId, { 'set-cookie': clearLogin });
        return { error: 'ERR_AUTH_STATE_INVALID' };
      }
      const callbackUrl = new URL(auth.settings.redirectUrl ?? `${origin}/oauth2/callback`);
      callbackUrl.search = url.search;
      let tokens;
      try {
        tokens = await redeemCallback(auth.oidc, callbackUrl, login);
      } catch (error) {
        log.warn({ req_id: requestId, provider_error: providerErrorFields(error) }, 'login failed at the code exchange');
        sendError(req, res, 'ERR_AUTH_LOGIN_FAILED', requestId, { 'set-cookie': clearLogin });
        return { error: 'ERR_AUTH_LOGIN_FAILED', cause: error as Error };
      }
      const established = await auth.establish(tokens);
      const refusal = 'refusal' in established ? established.refusal : auth.policy.authorize(established.identity);
      if (refusal || !('identity' in established)) {
        log.info({ req_id: requestId, rule: refusal?.rule }, 'login refused by policy');
        sendError(req, res, 'ERR_AUTH_FORBIDDEN', requestId, { 'set-cookie': clearLogin }, { detail: `${refusal?.message} (rule: ${refusal?.rule})` });
        return { error: 'ERR_AUTH_FORBIDDEN' };
      }
      const session = auth.sessions.create({
        identity: established.identity, idToken: tokens.idToken, accessToken: tokens.accessToken, refreshToken: tokens.refreshToken,
        accessExpiresAt: tokens.accessExpiresAt, accessLifetimeMs: tokens.accessLifetimeMs, sid: typeof tokens.claims.sid === 'string' ? tokens.claims.sid : undefined,
      }, auth.settings.cookieExpireMs);
      log.info({ req_id: requestId, user: session.identity.user }, 'login');
      const cookies = [...clearLogin, setCookie(auth.sessions.cookieName, auth.sessions.cookieValue(session), { maxAgeSeconds: auth.settings.cookieExpireMs / 1000, sameSite: auth.settings.sameSite })];
      if (auth.settings.sameSite === 'Strict') {
        // A redirect chain that began at the provider is cross-site: a Strict cookie would not be sent with the
        // redirect, and the user would land logged out (a login loop). A page of our own starts a same-site navigation.
        const href = escapeHtml(login.returnTo);
        const body = `<!doctype html><html lang="en"><head><meta charset="utf-8"><meta http-equiv="refresh" content="0;url=${href}"><title>Signed in</title></head><body><p><a href="${href}">Continue</a></p></body></html>\n`;
        common(res).writeHead(200, { 'set-cookie': cookies, 'content-type': 'text/html; charset=utf-8', 'content-length': Buffer.byteLength(body), 'cache-control': 'no-store', 'x-request-id': requestId }).end(body);
        return {};
      }
      common(res).writeHead(302, { location: login.returnTo, 'set-cookie': cookies, 'cache-control': 'no-store', 'content-length': '0', 'x-request-id': requestId }).end();
      return {};
    }

    case '/oauth2/sign_in': {
      const target = returnTo(`${origin}/`);
      if (!target) return refuse('ERR_AUTH_REDIRECT_INVALID');
      const href = `/oauth2/start?rd=${encodeURIComponent(target)}`.replace(/&/g, '&amp;');
      const body = `<!doctype html><html lang="en"><head><meta charset="utf-8"><title>Sign in</title>
<style>body{font:16px system-ui;display:grid;place-items:center;min-height:90vh}a{padding:.8em 1.6em;border-radius:6px;background:#1f5fbf;color:#fff;text-decoration:none}</style></head>
<body><main><h1>Sign in to ${escapeHtml(host)}</h1><p><a id="sign-in" href="${href}">Sign in with ${auth.settings.provider === 'entra-id' ? 'Microsoft' : 'your identity provider'}</a></p></main></body></html>\n`;
      common(res).writeHead(200, { 'content-type': 'text/html; charset=utf-8', 'content-length': Buffer.byteLength(body), 'cache-control': 'no-store', 'x-request-id': requestId }).end(body);
      return {};
    }

    case '/oauth2/sign_out': {
      const session = auth.sessions.fromCookie(readCookie(req.headers.cookie, auth.sessions.cookieName));
      const target = returnTo(`${origin}/`);
      if (!target) return refuse('ERR_AUTH_REDIRECT_INVALID');
      const idToken = session ? auth.sessions.tokens(session).idToken : undefined;
      if (session) auth.sessions.delete(session);
      const idp = await endSessionUrl(auth.oidc, idToken, target).catch(() => undefined);
      log.info({ req_id: requestId, user: session?.identity.user, provider_logout: idp !== undefined }, 'logout');
      common(res).writeHead(302, {
        location: idp ?? target, 'set-cookie': [clearCookie(auth.sessions.cookieName)],
        'cache-control': 'no-store', 'content-length': '0', 'x-request-id': requestId,
      }).end();
      return {};
    }

    case '/oauth2/frontchannel_logout': {
      // OpenID Front-Channel Logout, loaded by the provider in a hidden iframe: our SameSite cookie is not sent there,
      // so sessions are found by the provider's sid. Entra sends only sid, no iss.
      // https://openid.net/specs/openid-connect-frontchannel-1_0.html#RPLogout
      const sid = url.searchParams.get('sid');
      const iss = url.searchParams.get('iss');
      const issuer = auth.oidc.ready ? (await auth.oidc.configuration()).serverMetadata().issuer : undefined;
      const ended = sid && (iss === null || iss === issuer) ? auth.sessions.deleteBySid(sid) : 0;
      log.info({ req_id: requestId, sessions: ended }, 'front-channel logout');
      common(res).writeHead(200, {
        'content-type': 'text/plain', 'content-length': '0', 'cache-control': 'no-store', 'x-request-id': requestId,
        'content-security-policy': `frame-ancestors ${issuer ? new URL(issuer).origin : "'none'"}`,
      }).end();
      return {};
    }

    case '/oauth2/auth':
    case '/oauth2/userinfo': {
      const session = await auth.authenticate(req.headers);
      if (session === PROVIDER_UNAVAILABLE) return { error: sendProviderUnavailable(req, res, requestId) };
      if (!session) return refuse('ERR_AUTH_REQUIRED');
      const refusal = auth.policy.authorize(session.identity);
      if (refusal) return refuse('ERR_AUTH_FORBIDDEN', `${refusal.message} (rule: ${refusal.rule})`);
      const body = pathname === '/oauth2/auth' ? '' : JSON.stringify(userinfo(session.identity));
      // The user headers only, never a token: this answer reaches the browser too, where any script of the site reads
      // it (fetch('/oauth2/auth')). Tokens go to Gatehouse's upstreams only, so unlike oauth2-proxy there is no
      // X-Auth-Request-Access-Token here for an nginx auth_request to copy (README, "Endpoints").
      const headers = pathname === '/oauth2/auth' && auth.settings.setXAuthRequest ? identityHeaders(auth.settings, session, { tokens: false }) : {};
      for (const name of Object.keys(headers)) if (name.startsWith('x-forwarded-')) delete headers[name];
      common(res).writeHead(pathname === '/oauth2/auth' ? 202 : 200, {
        ...headers, 'content-type': 'application/json', 'content-length': Buffer.byteLength(body), 'cache-control': 'no-store', 'x-request-id': requestId,
      }).end(body);
      return {};
    }

    default:
      return refuse('ERR_ROUTE_NOT_FOUND');
  }
}

function escapeHtml(text: string): string {
  return text.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
}

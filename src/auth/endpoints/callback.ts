// /oauth2/callback?code=&state=: the provider sends the browser back here. The state names the login cookie (and with
// it the PKCE verifier, nonce and return URL); the code is redeemed, the identity checked against the policy, and a
// session begins. Every answer clears that login cookie: a login state is used once.
import { sendOwn } from '../../base/own-answer.ts';
import { html, renderPage } from '../../base/page.ts';
import { clearCookie, setCookie } from '../../session/cookies.ts';
import type { LoginState } from '../../session/login-state.ts';
import type { Identity } from '../../session/sessions.ts';
import { redeemCallback, type TokenSet } from '../oidc/callback.ts';
import { providerErrorFields } from '../oidc/client.ts';
import { refuse, type Endpoint, type EndpointCall, type OAuth2Outcome } from './call.ts';

export const callback: Endpoint = async (call) => {
  const state = call.url.searchParams.get('state') ?? '';
  const login = state ? call.auth.loginCookies.find(call.req.headers.cookie, state) : undefined;
  const clearLogin = state ? [clearCookie(call.auth.loginCookies.nameFor(state))] : [];
  const providerError = call.url.searchParams.get('error');
  if (providerError) {
    call.auth.record('login', 'provider_error');
    return providerRefused(call, providerError, clearLogin);
  }
  if (!login) {
    call.auth.record('login', 'invalid_state');
    return refuse(call, 'ERR_AUTH_STATE_INVALID', { headers: { 'set-cookie': clearLogin } });
  }
  let tokens: TokenSet;
  try {
    tokens = await redeem(call, login);
  } catch (error) {
    call.log.warn(
      { req_id: call.requestId, provider_error: providerErrorFields(error) },
      'login failed at the code exchange',
    );
    call.auth.record('login', 'failed');
    return refuse(call, 'ERR_AUTH_LOGIN_FAILED', { cause: error as Error, headers: { 'set-cookie': clearLogin } });
  }
  const established = await call.auth.establish(tokens);
  const refusal = 'refusal' in established ? established.refusal : call.auth.policy.authorize(established.identity);
  if (refusal || !('identity' in established)) {
    call.log.info({ req_id: call.requestId, rule: refusal?.rule }, 'login refused by policy');
    call.auth.record('login', 'refused');
    return refuse(call, 'ERR_AUTH_FORBIDDEN', {
      detail: `${refusal?.message} (rule: ${refusal?.rule})`,
      headers: { 'set-cookie': clearLogin },
    });
  }
  const sessionCookie = await beginSession(call, established.identity, tokens);
  call.auth.record('login', 'success');
  signedIn(call, login.returnTo, [...clearLogin, sessionCookie]);
  return {};
};

/** The provider answered the login with an error (the user cancelled, consent was refused, …). */
function providerRefused(call: EndpointCall, providerError: string, clearLogin: string[]): OAuth2Outcome {
  const description = call.url.searchParams.get('error_description')?.slice(0, 300);
  call.log.info(
    { req_id: call.requestId, provider_error: providerError.slice(0, 64), description },
    'provider refused the login',
  );
  const detail = `The identity provider answered "${providerError.replace(/[^\w.-]/g, '').slice(0, 64)}".`;
  return refuse(call, 'ERR_AUTH_PROVIDER_REFUSED', { detail, headers: { 'set-cookie': clearLogin } });
}

/** The code exchange, at the redirect URL the provider knows, with this request's query. */
function redeem(call: EndpointCall, login: LoginState): Promise<TokenSet> {
  const callbackUrl = new URL(call.auth.settings.redirectUrl ?? `${call.origin}/oauth2/callback`);
  callbackUrl.search = call.url.search;
  return redeemCallback(call.auth.oidc, callbackUrl, login);
}

/** Stores the new session and answers its cookie. */
async function beginSession(call: EndpointCall, identity: Identity, tokens: TokenSet): Promise<string> {
  const { sessions, settings } = call.auth;
  const session = await sessions.create(
    {
      identity,
      idToken: tokens.idToken,
      accessToken: tokens.accessToken,
      refreshToken: tokens.refreshToken,
      accessExpiresAt: tokens.accessExpiresAt,
      accessLifetimeMs: tokens.accessLifetimeMs,
      sid: typeof tokens.claims.sid === 'string' ? tokens.claims.sid : undefined,
    },
    settings.cookieExpireMs,
  );
  call.log.info({ req_id: call.requestId, user: session.identity.user }, 'login');
  return setCookie(sessions.cookieName, sessions.cookieValue(session), {
    maxAgeSeconds: settings.cookieExpireMs / 1000,
    sameSite: settings.sameSite,
    domain: settings.cookieDomain,
  });
}

/** Back to where the login began: a 302, or with SameSite=Strict a page of our own that goes there. */
function signedIn(call: EndpointCall, returnTo: string, cookies: string[]): void {
  const res = call.res;
  if (call.auth.settings.sameSite !== 'Strict') {
    sendOwn(res, 302, call.requestId, { headers: { location: returnTo, 'set-cookie': cookies } });
    return;
  }
  // A redirect chain that began at the provider is cross-site: a Strict cookie would not be sent with the redirect,
  // and the user would land logged out (a login loop). A page of our own starts a same-site navigation.
  const page = renderPage({
    title: 'Signed in',
    head: html`<meta http-equiv="refresh" content="0;url=${returnTo}">`,
    body: html`<p><a href="${returnTo}">Continue</a></p>`,
  });
  sendOwn(res, 200, call.requestId, { headers: { 'set-cookie': cookies }, body: { type: 'html', text: page } });
}

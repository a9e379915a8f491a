// /oauth2/sign_out?rd=: deletes the session server-side, clears its cookie, then logs out at the provider
// (RP-Initiated Logout, https://openid.net/specs/openid-connect-rpinitiated-1_0.html) or goes straight to `rd`.
import { sendOwn } from '../../base/own-answer.ts';
import { clearCookie, readCookie } from '../../session/cookies.ts';
import { endSessionUrl } from '../oidc/callback.ts';
import { refuse, returnTo, type Endpoint } from './call.ts';

export const signOut: Endpoint = async (call) => {
  const { sessions } = call.auth;
  const session = await sessions.fromCookie(readCookie(call.req.headers.cookie, sessions.cookieName));
  const target = returnTo(call);
  if (!target) return refuse(call, 'ERR_AUTH_REDIRECT_INVALID');
  const idToken = session ? (await sessions.tokens(session)).idToken : undefined;
  // Every instance drops its copy (a shared store publishes the end); an unreachable store answers 503, the cookie
  // stays: the session would live on elsewhere.
  if (session) await sessions.delete(session);
  call.auth.record('logout', session ? 'signed_out' : 'no_session');
  const idp = await endSessionUrl(call.auth.oidc, idToken, target).catch(() => undefined);
  call.log.info({ req_id: call.requestId, user: session?.identity.user, provider_logout: idp !== undefined }, 'logout');
  sendOwn(call.res, 302, call.requestId, {
    headers: {
      location: idp ?? target,
      'set-cookie': [clearCookie(sessions.cookieName, call.auth.settings.cookieDomain)],
    },
  });
  return {};
};

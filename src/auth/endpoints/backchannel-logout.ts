// /oauth2/backchannel_logout: OpenID Connect Back-Channel Logout 1.0. The provider POSTs a logout token
// (application/x-www-form-urlencoded, logout_token=…) server to server; every session of its sid (or, without one,
// of its sub) ends on every instance (the store publishes the ends; cluster workers see them in the shared file).
// 200 when done, 400 with a JSON error when the request or token is not valid, always Cache-Control: no-store.
// https://openid.net/specs/openid-connect-backchannel-1_0.html#BCRequest
import { sendOwn } from '../../base/own-answer.ts';
import { LogoutTokenError, verifyLogoutToken } from '../oidc/logout-token.ts';
import { refuse, type Endpoint, type EndpointCall } from './call.ts';

/** A logout token is a few kB; anything much larger is not one. */
const MAX_BODY_BYTES = 64 * 1024;
const BODY_TIMEOUT_MS = 10_000;

export const backchannelLogout: Endpoint = async (call) => {
  if (call.req.method !== 'POST') return refuse(call, 'ERR_LOGOUT_METHOD');
  const type = String(call.req.headers['content-type'] ?? '')
    .split(';')[0]!
    .trim()
    .toLowerCase();
  if (type !== 'application/x-www-form-urlencoded')
    return refuse(call, 'ERR_LOGOUT_TOKEN_INVALID', { detail: 'The body is not application/x-www-form-urlencoded.' });
  const body = await readBody(call);
  if (body === undefined)
    return refuse(call, 'ERR_LOGOUT_TOKEN_INVALID', { detail: 'The body is too large or incomplete.' });
  const token = new URLSearchParams(body).getAll('logout_token');
  if (token.length !== 1 || !token[0])
    return refuse(call, 'ERR_LOGOUT_TOKEN_INVALID', { detail: 'The body has no (single) logout_token.' });
  if (!call.auth.oidc.ready) return refuse(call, 'ERR_AUTH_PROVIDER_UNAVAILABLE');

  let logout;
  try {
    logout = await verifyLogoutToken(call.auth, token[0]);
  } catch (error) {
    if (!(error instanceof LogoutTokenError)) throw error;
    call.log.warn({ req_id: call.requestId, reason: error.message }, 'back-channel logout token refused');
    return refuse(call, 'ERR_LOGOUT_TOKEN_INVALID', {
      detail: `The logout token is not valid (${error.message}).`,
      cause: error,
    });
  }
  if (!(await call.auth.sessions.firstUse(`logout:${logout.jti}`, logout.rememberUntil))) {
    call.log.warn({ req_id: call.requestId, jti: logout.jti }, 'back-channel logout token replayed');
    return refuse(call, 'ERR_LOGOUT_TOKEN_INVALID', { detail: 'This logout token was already used (jti).' });
  }
  // §2.7: with a sid, the sessions of that provider session; with only a sub, every session of that user.
  const ended = logout.sid
    ? await call.auth.sessions.deleteBySid(logout.sid)
    : await call.auth.sessions.deleteBySub(logout.sub!);
  call.log.info({ req_id: call.requestId, sid: logout.sid, sub: logout.sub, sessions: ended }, 'back-channel logout');
  sendOwn(call.res, 200, call.requestId);
  return {};
};

/** The request body as text, or undefined when it is larger than MAX_BODY_BYTES or does not arrive in time. */
function readBody(call: EndpointCall): Promise<string | undefined> {
  const req = call.req;
  return new Promise((resolve) => {
    const chunks: Buffer[] = [];
    let size = 0;
    const timer = setTimeout(() => finish(undefined), BODY_TIMEOUT_MS);
    const finish = (text: string | undefined) => {
      clearTimeout(timer);
      req.off('data', onData);
      req.off('end', onEnd);
      req.off('error', onError);
      if (text === undefined) req.resume();
      resolve(text);
    };
    const onData = (chunk: Buffer) => {
      size += chunk.length;
      if (size > MAX_BODY_BYTES) finish(undefined);
      else chunks.push(chunk);
    };
    const onEnd = () => finish(Buffer.concat(chunks).toString('utf8'));
    const onError = () => finish(undefined);
    req.on('data', onData);
    req.on('end', onEnd);
    req.on('error', onError);
  });
}

// OpenID Connect Back-Channel Logout 1.0, the logout token: a JWT the provider signs with its ID token keys and POSTs
// to the RP. Validated as §2.6 says: signature, iss, aud = our client_id, iat (and exp), the back-channel logout
// event, a sid and/or a sub, and no nonce (so an ID token cannot pass for a logout token). The jti is returned for the
// replay guard. https://openid.net/specs/openid-connect-backchannel-1_0.html#Validation
import * as jose from 'jose';
import { keySet, type BearerSite } from '../bearer.ts';

const EVENT = 'http://schemas.openid.net/event/backchannel-logout';
/** A logout token older than this is refused (and its jti need not be remembered longer). */
export const LOGOUT_TOKEN_MAX_AGE_S = 600;

export interface LogoutToken {
  sid?: string;
  sub?: string;
  jti: string;
  /** When the jti may be forgotten (ms since epoch). */
  rememberUntil: number;
}

export class LogoutTokenError extends Error {
  override readonly name = 'LogoutTokenError';
}

export async function verifyLogoutToken(auth: BearerSite, token: string): Promise<LogoutToken> {
  const issuer = (await auth.oidc.configuration()).serverMetadata().issuer;
  let payload: jose.JWTPayload;
  let typ: string | undefined;
  try {
    const verified = await jose.jwtVerify(token, await keySet(auth, issuer, true), {
      issuer,
      audience: auth.settings.clientId,
      requiredClaims: ['iat', 'jti', 'events'],
      maxTokenAge: LOGOUT_TOKEN_MAX_AGE_S,
      clockTolerance: 30,
    });
    payload = verified.payload;
    typ = verified.protectedHeader.typ;
  } catch (error) {
    throw new LogoutTokenError(
      error instanceof jose.errors.JOSEError ? `${error.code}: ${error.message}` : String(error),
    );
  }
  // §2.4: "logout+jwt" when typed at all (explicit typing keeps other JWTs of the issuer out).
  if (typ !== undefined && typ.toLowerCase() !== 'logout+jwt' && typ.toLowerCase() !== 'application/logout+jwt')
    throw new LogoutTokenError(`typ "${typ}" is not logout+jwt`);
  const events = payload.events;
  if (
    !events ||
    typeof events !== 'object' ||
    Array.isArray(events) ||
    typeof (events as Record<string, unknown>)[EVENT] !== 'object'
  )
    throw new LogoutTokenError(`events has no ${EVENT} member`);
  if ('nonce' in payload) throw new LogoutTokenError('a logout token has no nonce');
  const sid = typeof payload.sid === 'string' && payload.sid !== '' ? payload.sid : undefined;
  const sub = typeof payload.sub === 'string' && payload.sub !== '' ? payload.sub : undefined;
  if (!sid && !sub) throw new LogoutTokenError('neither sid nor sub');
  if (typeof payload.jti !== 'string' || payload.jti === '') throw new LogoutTokenError('no jti');
  const rememberUntil = Math.max((payload.exp ?? 0) * 1000, ((payload.iat ?? 0) + LOGOUT_TOKEN_MAX_AGE_S + 30) * 1000);
  return { ...(sid ? { sid } : {}), ...(sub ? { sub } : {}), jti: payload.jti, rememberUntil };
}

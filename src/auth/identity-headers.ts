// What the upstream learns about the user: oauth2-proxy's header names, set from the verified session only.
// Client-sent copies of every name (in any case/_/. variant) are already gone (OWNED_HEADERS in request-headers.ts);
// Gatehouse's own cookies are left out as they are built (SiteOwned), so no upstream ever sees a session or login cookie.
import type { AuthSettings } from '../config/model.ts';
import { upstreamRequestHeaders, type ForwardingFacts } from '../proxy/request-headers.ts';
import type { Identity, Session } from '../session/sessions.ts';

/** Names only Gatehouse sets on an [auth] site besides OWNED_HEADERS: the client's Authorization when we set our own. */
export function ownedAuthHeaders(settings: AuthSettings): ReadonlySet<string> {
  return settings.passAuthorizationHeader ? new Set(['authorization']) : new Set();
}

/** The identity headers of a session, by name; with tokens = false without the access/ID token headers (for an
 *  answer that reaches the browser: tokens go to upstreams only). */
export function identityHeaders(
  settings: AuthSettings,
  session: Session,
  { tokens = true } = {},
): Record<string, string> {
  const id = session.identity;
  const out: Record<string, string> = {};
  const user = settings.preferEmailToUser && id.email ? id.email : id.user;
  const put = (names: string[], value: string | undefined) => {
    if (value) for (const name of names) out[name] = headerSafe(value);
  };
  const families = [
    ...(settings.setXAuthRequest ? ['x-auth-request'] : []),
    ...(settings.passUserHeaders ? ['x-forwarded'] : []),
  ];
  put(
    families.map((f) => `${f}-user`),
    user,
  );
  put(
    families.map((f) => `${f}-email`),
    id.email,
  );
  put(
    families.map((f) => `${f}-preferred-username`),
    id.preferredUsername,
  );
  put(
    families.map((f) => `${f}-groups`),
    id.groups.length > 0 ? id.groups.join(',') : undefined,
  );
  if (!tokens) return out;
  if (settings.passAccessToken) {
    put(
      [...(settings.setXAuthRequest ? ['x-auth-request-access-token'] : []), 'x-forwarded-access-token'],
      session.accessToken,
    );
  }
  if (settings.passAuthorizationHeader) {
    const token = settings.authorizationToken === 'id_token' ? session.idToken : session.accessToken;
    if (token) out.authorization = `Bearer ${token}`;
  }
  return out;
}

/** The upstream request's headers on any site: on an [auth] site without Gatehouse's cookies and, for a signed-in
 *  user, with the identity headers (client copies of them are dropped first, in every spelling). */
export function upstreamHeaders(
  incoming: Record<string, string | string[] | undefined>,
  facts: ForwardingFacts,
  auth?: { settings: AuthSettings; ownedHeaders: ReadonlySet<string> },
  session?: Session,
): Record<string, string | string[]> {
  if (!auth) return upstreamRequestHeaders(incoming, facts);
  const headers = upstreamRequestHeaders(incoming, facts, {
    headers: auth.ownedHeaders,
    cookiePrefix: auth.settings.cookieName,
  });
  if (session) Object.assign(headers, sessionHeaders(auth.settings, session));
  return headers;
}

/** A session's identity headers, built once: a cached session is one object until a save (refresh, another
 *  instance's change) replaces it, so its headers cannot change under it. Keyed by settings too (a reload's new
 *  configuration may name other headers for the same session object). */
const built = new WeakMap<Session, { settings: AuthSettings; headers: Record<string, string> }>();
function sessionHeaders(settings: AuthSettings, session: Session): Record<string, string> {
  const hit = built.get(session);
  if (hit?.settings === settings) return hit.headers;
  const headers = identityHeaders(settings, session);
  built.set(session, { settings, headers });
  return headers;
}

/** Header values are ASCII without controls; anything else (Unicode names, CR/LF) is percent-encoded. */
function headerSafe(value: string): string {
  return /^[\x20-\x7e]*$/.test(value) ? value : value.replace(/[^\x20-\x7e]/gu, (c) => encodeURIComponent(c));
}

export function userinfo(identity: Identity): Record<string, unknown> {
  return {
    user: identity.user,
    email: identity.email,
    preferredUsername: identity.preferredUsername,
    groups: identity.groups,
    roles: identity.roles,
    ...(identity.tid ? { tenant: identity.tid } : {}),
  };
}

// skip_jwt_bearer_tokens: an API client may present "Authorization: Bearer <JWT>" instead of a session. The JWT must
// be signed by the site's issuer (audience = client_id) or by one of extra_jwt_issuers (issuer=audience); the
// identity it yields passes through the same policy as a browser session. Nothing is stored.
import * as jose from 'jose';
import type { AuthSettings } from '../config/model.ts';
import type { Session } from '../session/sessions.ts';
import { checkEntraTenant } from './entra/issuer.ts';
import { identityFromClaims } from './identity.ts';
import type { OidcClient } from './oidc/client.ts';

/** What verifying a bearer token reads of a site's auth: SiteAuth has both, and site-auth.ts imports this file. */
export interface BearerSite {
  readonly settings: AuthSettings;
  readonly oidc: OidcClient;
}

const keySets = new WeakMap<BearerSite, Map<string, Promise<jose.JWTVerifyGetKey>>>();

export async function verifyBearer(auth: BearerSite, header: string): Promise<Session | undefined> {
  const match = /^Bearer\s+([\w-]+\.[\w-]+\.[\w-]+)\s*$/i.exec(header);
  if (!match) return undefined;
  const token = match[1]!;
  let issuer: string;
  try {
    issuer = String(jose.decodeJwt(token).iss);
  } catch {
    return undefined;
  }
  const { settings } = auth;
  const siteIssuer =
    (await auth.oidc.configuration().catch(() => undefined))?.serverMetadata().issuer ?? settings.issuer;
  const audience =
    issuer === siteIssuer ? settings.clientId : settings.extraJwtIssuers.find((e) => e.issuer === issuer)?.audience;
  if (!audience) return undefined;
  try {
    const keys = await keySet(auth, issuer, issuer === siteIssuer);
    const { payload } = await jose.jwtVerify(token, keys, { issuer, audience, clockTolerance: 30 });
    // The tenant rules of a login hold for the site's own Entra issuer here too (tid of that tenant).
    if (
      settings.provider === 'entra-id' &&
      issuer === siteIssuer &&
      checkEntraTenant(payload as Record<string, unknown>, siteIssuer, settings.allowedTenants)
    )
      return undefined;
    const now = Date.now();
    return {
      id: '',
      identity: identityFromClaims(payload as Record<string, unknown>, settings.provider),
      accessToken: token,
      refreshable: false,
      createdAt: now,
      refreshedAt: now,
      expiresAt: (payload.exp ?? 0) * 1000,
    };
  } catch {
    return undefined;
  }
}

/** The issuer's signing keys (its jwks_uri, fetched and cached by jose); also for logout tokens. */
export function keySet(auth: BearerSite, issuer: string, isSiteIssuer: boolean): Promise<jose.JWTVerifyGetKey> {
  let sets = keySets.get(auth);
  if (!sets) keySets.set(auth, (sets = new Map()));
  let set = sets.get(issuer);
  if (!set) {
    set = (async () => {
      const fetchImpl = auth.oidc.fetch;
      let jwksUri: string;
      if (isSiteIssuer) {
        jwksUri = String((await auth.oidc.configuration()).serverMetadata().jwks_uri);
      } else {
        const response = await fetchImpl(`${issuer.replace(/\/$/, '')}/.well-known/openid-configuration`, {
          signal: AbortSignal.timeout(10_000),
        });
        jwksUri = String(((await response.json()) as { jwks_uri?: string }).jwks_uri);
      }
      return jose.createRemoteJWKSet(new URL(jwksUri), {
        [jose.customFetch]: (url: string, init: RequestInit) => fetchImpl(url, init),
      });
    })();
    set.catch(() => sets!.delete(issuer));
    sets.set(issuer, set);
  }
  return set;
}

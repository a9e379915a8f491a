// Finishing a login: the state names its login cookie, openid-client checks state, PKCE, nonce and the ID token
// (signature, iss, aud, exp), and the claims become an Identity (with Entra's tenant rules and group overage).
import * as client from 'openid-client';
import type { LoginState } from '../../session/login-state.ts';
import type { SessionTokens } from '../../session/sessions.ts';
import type { OidcClient } from './client.ts';

export interface TokenSet {
  claims: Record<string, unknown>;
  idToken?: string;
  accessToken?: string;
  refreshToken?: string;
  accessExpiresAt?: number;
  /** How long the access token lives from its issue (expires_in). */
  accessLifetimeMs?: number;
}

/** Exchanges the code of a callback URL; throws openid-client's errors (state mismatch, provider error, bad token). */
export async function redeemCallback(oidc: OidcClient, callbackUrl: URL, login: LoginState): Promise<TokenSet> {
  const config = await oidc.configuration();
  const sentAt = Date.now();
  const tokens = await client.authorizationCodeGrant(config, callbackUrl, {
    pkceCodeVerifier: login.codeVerifier,
    expectedState: login.state,
    expectedNonce: login.nonce,
    idTokenExpected: true,
  });
  return tokenSet(tokens, sentAt);
}

/** Uses the refresh token; the provider may rotate it (always keep the newest) and may send a new ID token. */
export async function refreshTokens(
  oidc: OidcClient,
  stored: SessionTokens & { refreshToken: string },
): Promise<TokenSet> {
  const config = await oidc.configuration();
  const sentAt = Date.now();
  const tokens = await client.refreshTokenGrant(config, stored.refreshToken);
  const fresh = tokenSet(tokens, sentAt);
  return {
    ...fresh,
    refreshToken: fresh.refreshToken ?? stored.refreshToken,
    idToken: fresh.idToken ?? stored.idToken,
  };
}

/** expires_in counts whole seconds (RFC 6749 §5.1) from when the provider issued the token, which lies between our
 *  request and its answer: the expiry is reckoned from the request and a second early, for a provider that rounds its
 *  clock down (oidc-provider does), so Gatehouse never takes for valid a token its provider already holds expired. */
function tokenSet(
  tokens: client.TokenEndpointResponse & client.TokenEndpointResponseHelpers,
  sentAt: number,
): TokenSet {
  const expiresIn = tokens.expiresIn();
  return {
    claims: (tokens.claims() ?? {}) as Record<string, unknown>,
    idToken: tokens.id_token,
    accessToken: tokens.access_token,
    refreshToken: tokens.refresh_token,
    accessExpiresAt: expiresIn !== undefined ? sentAt + Math.max(0, expiresIn - 1) * 1000 : undefined,
    accessLifetimeMs: expiresIn !== undefined ? expiresIn * 1000 : undefined,
  };
}

/** RP-initiated logout at the provider, when it offers an end_session_endpoint (undefined otherwise). */
export async function endSessionUrl(
  oidc: OidcClient,
  idToken: string | undefined,
  postLogoutRedirectUri: string,
): Promise<string | undefined> {
  if (!oidc.ready) return undefined;
  const config = await oidc.configuration();
  if (!config.serverMetadata().end_session_endpoint) return undefined;
  const params: Record<string, string> = { post_logout_redirect_uri: postLogoutRedirectUri };
  if (idToken) params.id_token_hint = idToken;
  return client.buildEndSessionUrl(config, params).href;
}

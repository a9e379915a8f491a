// Starting a login: authorization code flow with PKCE S256, state and nonce, always. PKCE is sent even when the
// discovery document does not advertise it (Entra's does not, yet enforces it once sent).
// https://www.rfc-editor.org/rfc/rfc7636 ; https://learn.microsoft.com/entra/identity-platform/v2-oauth2-auth-code-flow
import * as client from 'openid-client';
import { LOGIN_STATE_TTL_MS, type LoginStateCookies } from '../../session/login-state.ts';
import { clearCookie, setCookie } from '../../session/cookies.ts';
import type { OidcClient } from './client.ts';

export interface LoginStart {
  location: string;
  setCookies: string[];
}

export async function startLogin(
  oidc: OidcClient,
  cookies: LoginStateCookies,
  redirectUrl: string,
  returnTo: string,
  cookieHeader: string | string[] | undefined,
): Promise<LoginStart> {
  const config = await oidc.configuration();
  const state = client.randomState();
  const nonce = client.randomNonce();
  const codeVerifier = client.randomPKCECodeVerifier();
  const location = client.buildAuthorizationUrl(config, {
    redirect_uri: redirectUrl,
    scope: oidc.settings.scope,
    response_type: 'code',
    response_mode: 'query',
    state,
    nonce,
    code_challenge: await client.calculatePKCECodeChallenge(codeVerifier),
    code_challenge_method: 'S256',
  });
  const sealed = cookies.seal({ state, nonce, codeVerifier, returnTo, createdAt: Date.now() });
  return {
    location: location.href,
    setCookies: [
      ...cookies.excess(cookieHeader).map((name) => clearCookie(name)),
      // Lax, not the site's Strict: the callback is a top-level navigation coming from the provider's site.
      setCookie(cookies.nameFor(state), sealed, { maxAgeSeconds: LOGIN_STATE_TTL_MS / 1000, sameSite: 'Lax' }),
    ],
  };
}

// The demo's identity provider: a real OpenID Provider (oidc-provider) on 127.0.0.1 with two demo users, so the
// login → proxied page → logout loop works on a fresh machine with no account anywhere. Demo only: its login page
// accepts any password, its keys and sessions live in memory and vanish with the process.
import crypto from 'node:crypto';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { exportJWK, generateKeyPair } from 'jose';
import Provider, { type Configuration } from 'oidc-provider';

export const DEMO_USERS: Record<string, Record<string, unknown>> = {
  alice: {
    email: 'alice@demo.test',
    email_verified: true,
    preferred_username: 'alice',
    name: 'Alice (admin)',
    groups: ['admins', 'staff'],
  },
  bob: { email: 'bob@demo.test', email_verified: true, preferred_username: 'bob', name: 'Bob', groups: ['staff'] },
};

/** Refresh tokens without prompt=consent (as Entra issues them) and no consent screen: oidc-provider otherwise issues
 *  refresh tokens only after prompt=consent with offline_access. Shared with the test provider (test/harness/op.ts). */
export const ENTRA_LIKE_GRANTS: Pick<Configuration, 'issueRefreshToken' | 'loadExistingGrant'> = {
  issueRefreshToken: async (_ctx, client) => client.grantTypeAllowed('refresh_token'),
  loadExistingGrant: async (ctx) => {
    const grantId = ctx.oidc.result?.consent?.grantId ?? ctx.oidc.session!.grantIdFor(ctx.oidc.client!.clientId);
    if (grantId) return ctx.oidc.provider.Grant.find(grantId);
    const grant = new ctx.oidc.provider.Grant({
      clientId: ctx.oidc.client!.clientId,
      accountId: ctx.oidc.session!.accountId!,
    });
    grant.addOIDCScope('openid email profile offline_access');
    await grant.save();
    return grant;
  },
};

export interface DemoIdentityProvider {
  issuer: string;
  clientId: string;
  clientSecret: string;
  close(): Promise<void>;
}

export async function startDemoIdentityProvider(opts: {
  redirectUris: string[];
  postLogoutRedirectUris: string[];
  port?: number;
}): Promise<DemoIdentityProvider> {
  const server = http.createServer();
  await new Promise<void>((resolve) => server.listen(opts.port ?? 0, '127.0.0.1', resolve));
  const issuer = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  const clientId = 'gatehouse-demo';
  const clientSecret = crypto.randomBytes(24).toString('base64url');
  const { privateKey } = await generateKeyPair('RS256', { extractable: true });
  const config: Configuration = {
    clients: [
      {
        client_id: clientId,
        client_secret: clientSecret,
        redirect_uris: opts.redirectUris,
        post_logout_redirect_uris: opts.postLogoutRedirectUris,
        grant_types: ['authorization_code', 'refresh_token'],
        response_types: ['code'],
        token_endpoint_auth_method: 'client_secret_basic',
      },
    ],
    jwks: { keys: [{ ...(await exportJWK(privateKey)), kid: 'demo', alg: 'RS256', use: 'sig' } as never] },
    cookies: { keys: [crypto.randomBytes(32).toString('base64url')] },
    claims: { openid: ['sub', 'groups'], email: ['email', 'email_verified'], profile: ['name', 'preferred_username'] },
    // Like Entra: profile and email claims in the ID token itself.
    conformIdTokenClaims: false,
    findAccount: async (_ctx, id) => ({
      accountId: id,
      claims: async () => ({
        sub: id,
        ...(DEMO_USERS[id] ?? { email: `${id}@guest.demo.test`, preferred_username: id, name: id, groups: [] }),
      }),
    }),
    ...ENTRA_LIKE_GRANTS,
    pkce: { required: () => true },
    features: { devInteractions: { enabled: true }, rpInitiatedLogout: { enabled: true } },
    ttl: {
      AccessToken: 600,
      IdToken: 600,
      RefreshToken: 86_400,
      Session: 86_400,
      Grant: 86_400,
      Interaction: 600,
      AuthorizationCode: 60,
    },
  };
  const provider = new Provider(issuer, config);
  server.on('request', provider.callback());
  return {
    issuer,
    clientId,
    clientSecret,
    close: () =>
      new Promise((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}

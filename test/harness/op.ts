// A real OpenID Provider (oidc-provider, OpenID Certified) on 127.0.0.1 for tests: Entra-shaped claims in the
// ID token, refresh tokens without prompt=consent, PKCE required, RP-initiated logout.
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import Provider, { type Configuration } from 'oidc-provider';
import { ENTRA_LIKE_GRANTS } from '../../src/demo/identity-provider.ts';

export const USERS: Record<string, Record<string, unknown>> = {
  alice: {
    email: 'alice@example.test',
    preferred_username: 'alice@example.test',
    name: 'Alice Example',
    groups: ['admins', 'developers'],
    roles: ['Proxy.Admin'],
  },
  bob: { email: 'bob@other.test', preferred_username: 'bob', name: 'Bob Other', groups: ['users'], roles: [] },
  mallory: {
    email: 'attacker@evil.com@example.test',
    preferred_username: 'mallory',
    name: 'Mallory',
    groups: [],
    roles: [],
  },
  carol: {
    email: 'carol@example.test',
    preferred_username: 'carol@example.test',
    name: 'Carol',
    groups: ['users'],
    roles: [],
  },
};

export interface OP {
  issuer: string;
  provider: Provider;
  /** Successful refresh_token grants so far. */
  refreshGrants(): number;
  /** Every token endpoint answer so far (the tokens the provider issued), in order. */
  tokenAnswers: Record<string, unknown>[];
  /** Holds each token endpoint answer back this long after the provider has made it: a provider that hangs. */
  tokenDelayMs: number;
  /** Lifetime (s) of the access tokens issued from now on. */
  accessTokenTtl: number;
  /** Holds the next token request before the provider looks at it, until release() is called; held() says whether
   *  it has arrived. */
  holdNextTokenRequest(): { held(): boolean; release(): void };
  close(): Promise<void>;
}

export async function startOP(opts: {
  redirectUris: string[];
  postLogoutRedirectUris?: string[];
  clientId?: string;
  clientSecret?: string;
  accessTokenTtl?: number;
  users?: Record<string, Record<string, unknown>>;
  rotateRefreshTokens?: boolean;
  /** ID tokens carry the provider's session id (sid), as Entra's do: oidc-provider adds it for a client registered for
   *  back-channel logout with sessions (the URI is never called in these tests). */
  sid?: boolean;
  /** Registers the client for back-channel logout at this URI (implies sid); the provider calls it through `fetch`. */
  backchannelLogoutUri?: string;
  /** How the provider makes its own outgoing requests (back-channel logout): e.g. trusting a test CA. */
  fetch?: typeof fetch;
}): Promise<OP> {
  const users = opts.users ?? USERS;
  const server = http.createServer();
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const issuer = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  const config: Configuration = {
    clients: [
      {
        client_id: opts.clientId ?? 'gatehouse',
        client_secret: opts.clientSecret ?? 'gatehouse-secret',
        redirect_uris: opts.redirectUris,
        post_logout_redirect_uris: opts.postLogoutRedirectUris ?? [],
        grant_types: ['authorization_code', 'refresh_token'],
        response_types: ['code'],
        token_endpoint_auth_method: 'client_secret_basic',
        ...(opts.sid || opts.backchannelLogoutUri
          ? {
              backchannel_logout_uri: opts.backchannelLogoutUri ?? 'https://127.0.0.1/unused',
              backchannel_logout_session_required: true,
            }
          : {}),
      },
    ],
    cookies: { keys: ['test-cookie-key-1'] },
    claims: { openid: ['sub', 'groups', 'roles', 'sid'], email: ['email'], profile: ['name', 'preferred_username'] },
    conformIdTokenClaims: false,
    ...(opts.fetch ? { fetch: opts.fetch } : {}),
    findAccount: async (_ctx, id) =>
      users[id] ? { accountId: id, claims: async () => ({ sub: id, ...users[id] }) } : undefined,
    ...ENTRA_LIKE_GRANTS,
    pkce: { required: () => true },
    ...(opts.rotateRefreshTokens ? { rotateRefreshToken: true } : {}),
    features: {
      devInteractions: { enabled: true },
      rpInitiatedLogout: { enabled: true },
      ...(opts.sid || opts.backchannelLogoutUri ? { backchannelLogout: { enabled: true } } : {}),
    },
    ttl: {
      AccessToken: () => op.accessTokenTtl,
      IdToken: 3600,
      RefreshToken: 86_400,
      Session: 86_400,
      Grant: 86_400,
      Interaction: 600,
      AuthorizationCode: 60,
    },
  };
  const provider = new Provider(issuer, config);
  let refreshes = 0;
  provider.on('grant.success', (ctx) => {
    if (ctx.oidc.params?.grant_type === 'refresh_token') refreshes++;
  });
  const op = {
    tokenAnswers: [] as Record<string, unknown>[],
    tokenDelayMs: 0,
    accessTokenTtl: opts.accessTokenTtl ?? 3600,
  };
  let gate: { arrived: boolean; open: Promise<void> } | undefined;
  provider.use(async (ctx, next) => {
    if (ctx.path === '/token' && gate) {
      const held = gate;
      gate = undefined;
      held.arrived = true;
      await held.open;
    }
    await next();
    if (ctx.path !== '/token' || ctx.status !== 200) return;
    op.tokenAnswers.push(ctx.body as Record<string, unknown>);
    // After the grant: the provider has already issued (and, rotating, used up the old refresh token) when it answers late.
    if (op.tokenDelayMs > 0) await new Promise((resolve) => setTimeout(resolve, op.tokenDelayMs));
  });
  server.on('request', provider.callback());
  return {
    issuer,
    provider,
    refreshGrants: () => refreshes,
    get tokenAnswers() {
      return op.tokenAnswers;
    },
    get tokenDelayMs() {
      return op.tokenDelayMs;
    },
    set tokenDelayMs(ms: number) {
      op.tokenDelayMs = ms;
    },
    holdNextTokenRequest() {
      let release = () => {};
      const held = { arrived: false, open: new Promise<void>((resolve) => (release = resolve)) };
      gate = held;
      return { held: () => held.arrived, release };
    },
    get accessTokenTtl() {
      return op.accessTokenTtl;
    },
    set accessTokenTtl(s: number) {
      op.accessTokenTtl = s;
    },
    close: () =>
      new Promise((r) => {
        server.closeAllConnections();
        server.close(() => r());
      }),
  };
}

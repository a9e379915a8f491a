// One protected site (app.test) in front of the echo upstream (echo-upstream.ts), logging in at a real oidc-provider.
import { startEchoUpstream, type EchoUpstream } from './echo-upstream.ts';
import { Browser, freePort, opAuth, startGatehouse, type TestGatehouse } from './gatehouse-auth.ts';
import { startOP, type OP } from './op.ts';

export interface AuthFixture {
  op: OP;
  gh: TestGatehouse;
  backend: EchoUpstream;
  origin: string;
  browser(): Browser;
  restart(): Promise<void>;
  close(): Promise<void>;
}

export async function startAuthFixture(
  opts: {
    auth?: Record<string, string | number | boolean | string[] | undefined>;
    accessTokenTtl?: number;
    rotateRefreshTokens?: boolean;
    dir?: string;
    port?: number;
  } = {},
): Promise<AuthFixture> {
  const backend = await startEchoUpstream();
  const port = opts.port ?? (await freePort());
  const origin = `https://app.test:${port}`;
  const op = await startOP({
    redirectUris: [`${origin}/oauth2/callback`],
    postLogoutRedirectUris: [`${origin}/`, `${origin}/bye`],
    accessTokenTtl: opts.accessTokenTtl,
    rotateRefreshTokens: opts.rotateRefreshTokens,
  });
  const sites = [
    {
      names: ['app.test'],
      upstream: backend.url,
      auth: {
        ...opAuth(op.issuer),
        pass_access_token: true,
        pass_authorization_header: true,
        api_routes: ['^/api/'],
        skip_auth_routes: ['^/public/', 'GET=^/health$'],
        ...opts.auth,
      },
    },
  ];
  const fixture: AuthFixture = {
    op,
    gh: await startGatehouse({ port, dir: opts.dir, sites }),
    backend,
    origin,
    browser: () => new Browser(fixture.gh.caPem),
    restart: async () => {
      await fixture.gh.stop();
      fixture.gh = await startGatehouse({ port, dir: fixture.gh.dir, sites });
    },
    close: async () => {
      await fixture.gh.stop();
      await op.close();
      await backend.close();
    },
  };
  return fixture;
}

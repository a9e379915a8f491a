// An Entra-ID emulator on jose + node:http, reproducing the quirks of Entra ID that an RP meets:
// the {tenantid} issuer template of common/organizations, no code_challenge_methods_supported in discovery (PKCE
// still enforced), session_state and no iss on the callback, members without email, group overage with Microsoft
// Graph transitiveMemberOf paging, AADSTS error bodies, refresh tokens that rotate (old ones keep working).
// Paths mirror Entra's, so a fetch that rewrites https://login.microsoftonline.com and https://graph.microsoft.com
// to this server is all the wiring needed (openid-client then takes its real Entra code path).
import crypto from 'node:crypto';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { exportJWK, generateKeyPair, SignJWT, type CryptoKey } from 'jose';

export const TENANT_A = '3f6b2d1e-8c4a-4e7b-9d2f-0a1b2c3d4e5f';
export const TENANT_B = '9a8b7c6d-5e4f-4a3b-8c1d-0e9f8a7b6c5d';
const LOGIN = 'https://login.microsoftonline.com';

export interface Persona {
  tid: string;
  oid: string;
  preferred_username?: string;
  email?: string;
  upn?: string;
  name?: string;
  groups?: string[];
  roles?: string[];
  /** Error the authorize endpoint answers with instead of a code (e.g. AADSTS50105 user not assigned). */
  authorizeError?: { error: string; code: number };
  /** Refresh answers interaction_required (AADSTS50076, MFA newly required). */
  mfaOnRefresh?: boolean;
  /** Graph answers 403 (no User.Read consent). */
  graphDenied?: boolean;
  /** The tenant named in the token's iss when it is not tid's: a token that claims one tenant and comes from another. */
  issuerTid?: string;
}

export const PERSONAS: Record<string, Persona> = {
  member: {
    tid: TENANT_A,
    oid: '7c1f0b7e-2a4d-4a39-9c1e-5b8f1d2e3a4b',
    preferred_username: 'AbeLi@contoso.com',
    name: 'Abe Lincoln',
    groups: ['b1aef995-6b55-4ac6-bbfe-e829810e9352'],
    roles: ['Proxy.Admin'],
  },
  phone: {
    tid: TENANT_A,
    oid: '11111111-2a4d-4a39-9c1e-5b8f1d2e3a4b',
    preferred_username: '+1 555 0100',
    name: 'Phone User',
    groups: ['b1aef995-6b55-4ac6-bbfe-e829810e9352'],
  },
  other: {
    tid: TENANT_B,
    oid: '22222222-2a4d-4a39-9c1e-5b8f1d2e3a4b',
    preferred_username: 'eve@fabrikam.com',
    email: 'eve@fabrikam.com',
    name: 'Eve',
  },
  badtid: { tid: 'not-a-guid', oid: '33333333-2a4d-4a39-9c1e-5b8f1d2e3a4b', preferred_username: 'x@contoso.com' },
  overage: {
    tid: TENANT_A,
    oid: '44444444-2a4d-4a39-9c1e-5b8f1d2e3a4b',
    preferred_username: 'big@contoso.com',
    email: 'big@contoso.com',
    groups: Array.from({ length: 250 }, (_, i) => `00000000-0000-4000-8000-${String(i).padStart(12, '0')}`),
  },
  overageDenied: {
    tid: TENANT_A,
    oid: '55555555-2a4d-4a39-9c1e-5b8f1d2e3a4b',
    preferred_username: 'big2@contoso.com',
    groups: Array.from({ length: 201 }, (_, i) => `g-${i}`),
    graphDenied: true,
  },
  unassigned: {
    tid: TENANT_A,
    oid: '66666666-2a4d-4a39-9c1e-5b8f1d2e3a4b',
    authorizeError: { error: 'access_denied', code: 50105 },
  },
  mfa: {
    tid: TENANT_A,
    oid: '77777777-2a4d-4a39-9c1e-5b8f1d2e3a4b',
    preferred_username: 'mfa@contoso.com',
    mfaOnRefresh: true,
  },
  crossTenant: {
    tid: TENANT_B,
    issuerTid: TENANT_A,
    oid: '88888888-2a4d-4a39-9c1e-5b8f1d2e3a4b',
    preferred_username: 'mallory@fabrikam.com',
    email: 'mallory@fabrikam.com',
  },
};

interface Code {
  persona: Persona;
  nonce: string;
  challenge: string;
  method: string;
  redirectUri: string;
  used: boolean;
}

export interface FakeEntra {
  base: string;
  /** The persona the next authorize request signs in. */
  persona: string;
  /** What the emulator observed. */
  seen: { authorize: URLSearchParams[]; graphCalls: number; refreshes: number };
  fetch(url: string, init: RequestInit): Promise<Response>;
  rewrite(url: string): string;
  /** The token response the emulator gives a persona (for bearer-token tests). */
  issue(persona: string): Promise<{ id_token: string; access_token: string }>;
  close(): Promise<void>;
}

export async function startFakeEntra(opts: {
  clientId: string;
  clientSecret: string;
  redirectUris: string[];
}): Promise<FakeEntra> {
  const { privateKey, publicKey } = await generateKeyPair('RS256');
  const kid = crypto.randomBytes(12).toString('base64url');
  const jwk = { ...(await exportJWK(publicKey)), kid, use: 'sig', x5t: kid, issuer: `${LOGIN}/{tenantid}/v2.0` };
  const codes = new Map<string, Code>();
  const refreshTokens = new Map<string, Persona>();
  const accessTokens = new Map<string, Persona>();
  const seen = { authorize: [] as URLSearchParams[], graphCalls: 0, refreshes: 0 };
  const state = { persona: 'member' };

  const server = http.createServer(async (req, res) => {
    const url = new URL(req.url!, 'http://x');
    const json = (status: number, body: unknown, headers: Record<string, string> = {}) =>
      res.writeHead(status, { 'content-type': 'application/json', ...headers }).end(JSON.stringify(body));
    const aadsts = (status: number, error: string, code: number, text: string) =>
      json(status, {
        error,
        error_description: `AADSTS${code}: ${text}\r\nTrace ID: ${crypto.randomUUID()}\r\nCorrelation ID: ${crypto.randomUUID()}\r\nTimestamp: 2026-01-09 02:02:12Z`,
        error_codes: [code],
        timestamp: '2026-01-09 02:02:12Z',
        trace_id: crypto.randomUUID(),
        correlation_id: crypto.randomUUID(),
        error_uri: `${LOGIN}/error?code=${code}`,
      });
    let m: RegExpExecArray | null;
    if ((m = /^\/([^/]+)\/v2\.0\/\.well-known\/openid-configuration$/.exec(url.pathname))) {
      const tenant = m[1]!;
      const issuerTenant = tenant === 'common' || tenant === 'organizations' ? '{tenantid}' : tenant;
      return json(
        200,
        {
          issuer: `${LOGIN}/${issuerTenant}/v2.0`,
          token_endpoint: `${LOGIN}/${tenant}/oauth2/v2.0/token`,
          authorization_endpoint: `${LOGIN}/${tenant}/oauth2/v2.0/authorize`,
          jwks_uri: `${LOGIN}/${tenant}/discovery/v2.0/keys`,
          end_session_endpoint: `${LOGIN}/${tenant}/oauth2/v2.0/logout`,
          userinfo_endpoint: 'https://graph.microsoft.com/oidc/userinfo',
          token_endpoint_auth_methods_supported: ['client_secret_post', 'private_key_jwt', 'client_secret_basic'],
          response_modes_supported: ['query', 'fragment', 'form_post'],
          subject_types_supported: ['pairwise'],
          id_token_signing_alg_values_supported: ['RS256'],
          response_types_supported: ['code', 'id_token', 'code id_token', 'id_token token'],
          scopes_supported: ['openid', 'profile', 'email', 'offline_access'],
          msgraph_host: 'graph.microsoft.com',
          cloud_instance_name: 'microsoftonline.com',
        },
        { 'cache-control': 'max-age=86400, private' },
      );
    }
    if (/^\/[^/]+\/discovery\/v2\.0\/keys$/.test(url.pathname)) return json(200, { keys: [jwk] });
    if ((m = /^\/([^/]+)\/oauth2\/v2\.0\/authorize$/.exec(url.pathname))) {
      const p = url.searchParams;
      seen.authorize.push(p);
      const redirectUri = p.get('redirect_uri') ?? '';
      if (p.get('client_id') !== opts.clientId || !opts.redirectUris.includes(redirectUri)) {
        return res
          .writeHead(400, { 'content-type': 'text/html' })
          .end('<h1>AADSTS50011: The redirect URI specified in the request does not match</h1>');
      }
      const persona = PERSONAS[state.persona]!;
      const back = new URL(redirectUri);
      if (persona.authorizeError) {
        back.search = new URLSearchParams({
          error: persona.authorizeError.error,
          error_description: `AADSTS${persona.authorizeError.code}: The signed in user is not assigned to a role for the application.`,
          state: p.get('state') ?? '',
        }).toString();
      } else {
        const code = `1.AXoA${crypto.randomBytes(24).toString('base64url')}`;
        codes.set(code, {
          persona,
          nonce: p.get('nonce') ?? '',
          challenge: p.get('code_challenge') ?? '',
          method: p.get('code_challenge_method') ?? 'plain',
          redirectUri,
          used: false,
        });
        back.search = new URLSearchParams({
          code,
          state: p.get('state') ?? '',
          session_state: crypto.randomUUID(),
        }).toString();
      }
      return res.writeHead(302, { location: back.href }).end();
    }
    if ((m = /^\/([^/]+)\/oauth2\/v2\.0\/token$/.exec(url.pathname)) && req.method === 'POST') {
      const body = new URLSearchParams(await text(req));
      const basic = Buffer.from((req.headers.authorization ?? '').replace(/^Basic /, ''), 'base64').toString();
      const [id, secret] = basic.split(':').map(decodeURIComponent);
      if (id !== opts.clientId || secret !== opts.clientSecret)
        return aadsts(401, 'invalid_client', 7000215, 'Invalid client secret provided.');
      if (body.get('grant_type') === 'authorization_code') {
        const code = codes.get(body.get('code') ?? '');
        if (!code)
          return aadsts(
            400,
            'invalid_grant',
            70008,
            'The provided authorization code or refresh token has expired due to inactivity.',
          );
        if (code.used) return aadsts(400, 'invalid_grant', 54005, 'OAuth2 Authorization code was already redeemed.');
        code.used = true;
        const verifier = body.get('code_verifier') ?? '';
        const computed =
          code.method === 'S256' ? crypto.createHash('sha256').update(verifier).digest('base64url') : verifier;
        if (!code.challenge || computed !== code.challenge)
          return aadsts(
            400,
            'invalid_grant',
            501481,
            'The Code_Verifier does not match the code_challenge supplied in the authorization request.',
          );
        if (body.get('redirect_uri') !== code.redirectUri)
          return aadsts(400, 'invalid_grant', 500112, 'The reply address does not match.');
        return json(200, await tokens(code.persona, code.nonce));
      }
      if (body.get('grant_type') === 'refresh_token') {
        const persona = refreshTokens.get(body.get('refresh_token') ?? '');
        if (!persona) return aadsts(400, 'invalid_grant', 70008, 'The refresh token has expired due to inactivity.');
        seen.refreshes++;
        if (persona.mfaOnRefresh)
          return aadsts(
            400,
            'interaction_required',
            50076,
            'Due to a configuration change made by your administrator, you must use multi-factor authentication.',
          );
        return json(200, await tokens(persona));
      }
      return aadsts(400, 'unsupported_grant_type', 70003, 'The app requested an unsupported grant type.');
    }
    if ((m = /^\/([^/]+)\/oauth2\/v2\.0\/logout$/.exec(url.pathname))) {
      return res.writeHead(302, { location: url.searchParams.get('post_logout_redirect_uri') ?? `${LOGIN}/` }).end();
    }
    if (url.pathname === '/graph/v1.0/me/transitiveMemberOf') {
      seen.graphCalls++;
      const persona = accessTokens.get((req.headers.authorization ?? '').replace(/^Bearer /, ''));
      if (!persona)
        return json(401, { error: { code: 'InvalidAuthenticationToken', message: 'Access token is empty.' } });
      if (persona.graphDenied)
        return json(403, {
          error: { code: 'Authorization_RequestDenied', message: 'Insufficient privileges to complete the operation.' },
        });
      const top = Number(url.searchParams.get('$top') ?? 100);
      const skip = Number(url.searchParams.get('$skiptoken') ?? 0);
      const all = persona.groups ?? [];
      const page = all.slice(skip, skip + top).map((id) => ({ '@odata.type': '#microsoft.graph.group', id }));
      const next =
        skip + top < all.length
          ? `https://graph.microsoft.com/v1.0/me/transitiveMemberOf?$select=id&$top=${top}&$skiptoken=${skip + top}`
          : undefined;
      return json(200, {
        '@odata.context': 'https://graph.microsoft.com/v1.0/$metadata#directoryObjects(id)',
        value: page,
        ...(next ? { '@odata.nextLink': next } : {}),
      });
    }
    res.writeHead(404).end();
  });

  async function tokens(persona: Persona, nonce?: string) {
    const now = Math.floor(Date.now() / 1000);
    const overage = (persona.groups?.length ?? 0) > 200;
    const claims: Record<string, unknown> = {
      ver: '2.0',
      tid: persona.tid,
      oid: persona.oid,
      name: persona.name,
      preferred_username: persona.preferred_username,
      ...(persona.email ? { email: persona.email } : {}),
      ...(persona.upn ? { upn: persona.upn } : {}),
      ...(persona.roles?.length ? { roles: persona.roles } : {}),
      ...(overage
        ? {
            _claim_names: { groups: 'src1' },
            _claim_sources: {
              src1: { endpoint: `https://graph.windows.net/${persona.tid}/users/${persona.oid}/getMemberObjects` },
            },
          }
        : persona.groups
          ? { groups: persona.groups }
          : {}),
      ...(nonce ? { nonce } : {}),
      aio: crypto.randomBytes(16).toString('base64url'),
      uti: crypto.randomBytes(12).toString('base64url'),
      sid: '00a1b2c3-d4e5-f6a7-b8c9-d0e1f2a3b4c5',
    };
    const idToken = await new SignJWT(claims)
      .setProtectedHeader({ alg: 'RS256', kid, typ: 'JWT' })
      .setIssuer(`${LOGIN}/${persona.issuerTid ?? persona.tid}/v2.0`)
      .setAudience(opts.clientId)
      .setSubject(crypto.createHash('sha256').update(`${persona.oid}|${opts.clientId}`).digest('base64url'))
      .setIssuedAt(now)
      .setNotBefore(now)
      .setExpirationTime(now + 3600)
      .sign(privateKey as CryptoKey);
    const accessToken = `eyJ0eXAiOiJKV1QiLCJub25jZSI6${crypto.randomBytes(48).toString('base64url')}`;
    const refreshToken = `1.AXoA${crypto.randomBytes(48).toString('base64url')}`;
    accessTokens.set(accessToken, persona);
    refreshTokens.set(refreshToken, persona);
    const expiresIn = 3600 + Math.floor(Math.random() * 1800);
    return {
      token_type: 'Bearer',
      scope: 'openid profile email User.Read',
      expires_in: expiresIn,
      ext_expires_in: expiresIn,
      access_token: accessToken,
      refresh_token: refreshToken,
      id_token: idToken,
    };
  }

  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  const rewrite = (u: string) => u.replace(LOGIN, base).replace('https://graph.microsoft.com', `${base}/graph`);
  return {
    base,
    seen,
    get persona() {
      return state.persona;
    },
    set persona(name: string) {
      state.persona = name;
    },
    rewrite,
    fetch: (u, init) => fetch(rewrite(String(u)), init),
    issue: (persona) => tokens(PERSONAS[persona]!),
    close: () =>
      new Promise((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}

function text(req: http.IncomingMessage): Promise<string> {
  return new Promise((resolve) => {
    let b = '';
    req.setEncoding('utf8');
    req.on('data', (d: string) => (b += d));
    req.on('end', () => resolve(b));
  });
}

// Turns a site's validated [auth] table into the frozen settings the auth code uses, with the cross-field checks
// a schema cannot express: secret length, a rule that says who may enter, Entra tenant rules, readable files.
import fs from 'node:fs';
import path from 'node:path';
import type { AuthInput } from './auth-schema.ts';
import type { AuthSettings, SkipAuthRoute } from './model.ts';
import type { Report } from './problems.ts';

const MULTI_TENANT = /^https:\/\/[^/]+\/(common|organizations)\/v2\.0\/?$/;

export function buildAuthSettings(raw: AuthInput, configDir: string, problem: Report): AuthSettings | undefined {
  let ok = true;
  const fail: Report = (key, message) => {
    ok = false;
    problem(['auth', ...key], message);
  };

  const cookieSecret = secretValue(raw.cookie_secret, raw.cookie_secret_file, 'cookie_secret', configDir, fail);
  const secret = cookieSecret === undefined ? undefined : decodeSecret(cookieSecret);
  if (cookieSecret !== undefined && !secret)
    fail(
      [raw.cookie_secret_file === undefined ? 'cookie_secret' : 'cookie_secret_file'],
      'must be 16, 24 or 32 bytes, raw or base64 encoded (openssl rand -base64 32)',
    );
  const clientSecret = secretValue(raw.client_secret, raw.client_secret_file, 'client_secret', configDir, fail);

  const hasRule = [raw.email_domains, raw.authenticated_emails_file, raw.allowed_groups, raw.allowed_roles].some(
    (r) => r !== undefined,
  );
  if (!hasRule)
    fail(
      [],
      'say who may enter: email_domains = ["*"] admits every user the provider signs in; or set authenticated_emails_file, allowed_groups or allowed_roles',
    );

  let emailsFile: string | undefined;
  if (raw.authenticated_emails_file !== undefined) {
    emailsFile = path.resolve(configDir, raw.authenticated_emails_file);
    try {
      fs.accessSync(emailsFile, fs.constants.R_OK);
    } catch {
      fail(['authenticated_emails_file'], `cannot read ${emailsFile}`);
    }
  }

  if (raw.provider === 'entra-id') {
    if (MULTI_TENANT.test(raw.oidc_issuer_url) && !raw.allowed_tenants) {
      fail(
        ['allowed_tenants'],
        'a common/organizations issuer admits every Entra tenant: list the tenant ids allowed to sign in (or ["*"] to admit all)',
      );
    }
  } else if (raw.allowed_tenants) {
    fail(['allowed_tenants'], 'allowed_tenants is for provider = "entra-id"');
  }

  const issuerUrl = new URL(raw.oidc_issuer_url);
  if (issuerUrl.protocol === 'http:' && !isLoopback(issuerUrl.hostname)) {
    fail(
      ['oidc_issuer_url'],
      'the issuer must be https:// (http:// is accepted only for a loopback issuer, as used by the demo and tests)',
    );
  }

  const skipAuthRoutes = raw.skip_auth_routes.map((text, i) => {
    const route = parseSkipAuthRoute(text);
    if (!route)
      fail(
        ['skip_auth_routes', i],
        'the form is "regex", "METHOD=regex" or "METHOD!=regex" with a valid regular expression',
      );
    return route;
  });

  const extraJwtIssuers = raw.extra_jwt_issuers.map((pair) => {
    const [issuer, audience] = pair.split('=') as [string, string];
    return { issuer: issuer.trim(), audience: audience.trim() };
  });

  const cookieDomain = raw.cookie_domain?.toLowerCase().replace(/^\./, '');
  if (!ok || !secret || clientSecret === undefined) return undefined;
  return {
    provider: raw.provider as 'oidc' | 'entra-id',
    issuer: raw.oidc_issuer_url,
    clientId: raw.client_id,
    clientSecret,
    redirectUrl: raw.redirect_url,
    scope: raw.scope,
    // __Host- binds the cookie to this exact host; with a Domain the most a browser enforces is __Secure-.
    cookieName: `${cookieDomain ? '__Secure-' : '__Host-'}${raw.cookie_name.replace(/^__(Host|Secure)-/, '')}`,
    cookieDomain,
    secret,
    cookieExpireMs: raw.cookie_expire,
    cookieRefreshMs: raw.cookie_refresh,
    sameSite: raw.cookie_samesite === 'strict' ? 'Strict' : 'Lax',
    emailDomains: raw.email_domains?.map((d) => d.toLowerCase()),
    authenticatedEmailsFile: emailsFile,
    allowedGroups: raw.allowed_groups,
    allowedRoles: raw.allowed_roles,
    allowedTenants: raw.allowed_tenants?.map((t) => t.toLowerCase()),
    setXAuthRequest: raw.set_xauthrequest,
    passUserHeaders: raw.pass_user_headers,
    passAccessToken: raw.pass_access_token,
    passAuthorizationHeader: raw.pass_authorization_header,
    authorizationToken: raw.authorization_token,
    preferEmailToUser: raw.prefer_email_to_user,
    skipAuthRoutes: skipAuthRoutes as SkipAuthRoute[],
    apiRoutes: raw.api_routes.map((source) => new RegExp(source)),
    whitelistDomains: raw.whitelist_domains.map((d) => d.toLowerCase()),
    skipJwtBearerTokens: raw.skip_jwt_bearer_tokens,
    extraJwtIssuers,
    trustedIps: raw.trusted_ips,
  };
}

/** NAME or NAME_file (oauth2-proxy's cookie_secret_file, client_secret_file: the file's content, one trailing newline
 *  trimmed); exactly one of them. */
function secretValue(
  inline: string | undefined,
  file: string | undefined,
  name: 'cookie_secret' | 'client_secret',
  configDir: string,
  fail: Report,
): string | undefined {
  if (inline !== undefined && file !== undefined) {
    fail([`${name}_file`], `give ${name} or ${name}_file, not both`);
    return undefined;
  }
  if (inline !== undefined) return inline;
  if (file === undefined) {
    fail([], `${name} (or ${name}_file) is required`);
    return undefined;
  }
  const resolved = path.resolve(configDir, file);
  try {
    return fs.readFileSync(resolved, 'utf8').replace(/\r?\n$/, '');
  } catch (error) {
    fail([`${name}_file`], `cannot read ${resolved}: ${(error as NodeJS.ErrnoException).code ?? String(error)}`);
    return undefined;
  }
}

/** oauth2-proxy reads cookie_secret as base64 when that decodes to 16/24/32 bytes, else as raw bytes. */
function decodeSecret(text: string): Buffer | undefined {
  const sizes = new Set([16, 24, 32]);
  for (const encoding of ['base64url', 'base64'] as const) {
    if (!/^[A-Za-z0-9+/_-]+=*$/.test(text)) break;
    const decoded = Buffer.from(text, encoding);
    if (sizes.has(decoded.length)) return decoded;
  }
  const raw = Buffer.from(text, 'utf8');
  return sizes.has(raw.length) ? raw : undefined;
}

function parseSkipAuthRoute(text: string): SkipAuthRoute | undefined {
  const match = /^([A-Z]+)(!?=)(.*)$/.exec(text);
  const [method, operator, source] = match ? [match[1], match[2], match[3]!] : [undefined, '=', text];
  try {
    // Anchored at the start: "/status" must not also match "/x/status" by accident (oauth2-proxy GHSA-7rh7-c77v-6434).
    return { method, negate: operator === '!=', pattern: new RegExp(source.startsWith('^') ? source : `^${source}`) };
  } catch {
    return undefined;
  }
}

export function isLoopback(hostname: string): boolean {
  return hostname === '127.0.0.1' || hostname === 'localhost' || hostname === '[::1]' || hostname === '::1';
}

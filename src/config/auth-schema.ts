// The [auth] table of a site file. Option names are oauth2-proxy's, verbatim, where the concept is the same, so an
// operator can paste from an oauth2-proxy .cfg. Options oauth2-proxy has and Gatehouse does not support are named in
// UNSUPPORTED_AUTH_OPTIONS and refused with a reason, never ignored.
import net from 'node:net';
import { z } from 'zod';
import { duration } from './units.ts';

const regex = z.string().refine((source) => {
  try {
    new RegExp(source);
    return true;
  } catch {
    return false;
  }
}, 'not a valid regular expression');

export const authSchema = z.strictObject({
  /** oidc (any OpenID Provider) or entra-id (Microsoft Entra ID); "azure" is accepted as an alias of entra-id. */
  provider: z
    .enum(['oidc', 'entra-id', 'azure'])
    .transform((p) => (p === 'azure' ? 'entra-id' : p))
    .default('oidc'),
  oidc_issuer_url: z.url({ protocol: /^https?$/ }),
  client_id: z.string().min(1),
  client_secret: z.string().min(1),
  /** Defaults to https://<the request's host>/oauth2/callback (register it at the provider for every server name). */
  redirect_url: z.url({ protocol: /^https$/, message: 'redirect_url must be an https:// URL' }).optional(),
  scope: z.string().default('openid email profile offline_access'),
  /** The session cookie's name; Gatehouse adds the __Host- prefix (Secure, Path=/, no Domain), or __Secure- with cookie_domain. */
  cookie_name: z
    .string()
    .regex(/^[A-Za-z0-9_-]+$/, 'cookie names are letters, digits, "_" and "-"')
    .default('_gatehouse'),
  /** 16, 24 or 32 bytes, raw or base64/base64url encoded (as oauth2-proxy). Keys for cookies and encryption at rest derive from it. */
  cookie_secret: z.string().min(16),
  /** Send the session cookie to every host under this domain (Domain attribute): one login covers sibling sites. */
  cookie_domain: z
    .string()
    .regex(
      /^\.?([a-zA-Z0-9]([a-zA-Z0-9-]*[a-zA-Z0-9])?\.)+[a-zA-Z0-9]([a-zA-Z0-9-]*[a-zA-Z0-9])?$/,
      'a domain with at least two labels, such as ".example.com"',
    )
    .optional(),
  cookie_expire: duration.default(168 * 3_600_000),
  /** Refresh the tokens when the session was last refreshed this long ago; 0 = only when the access token expires. */
  cookie_refresh: duration.default(0),
  cookie_samesite: z.enum(['lax', 'strict']).default('lax'),
  /** Accepted for pasted oauth2-proxy configs; Gatehouse cookies are always Secure and HttpOnly. */
  cookie_secure: z
    .literal(true, 'Gatehouse cookies are always Secure; remove cookie_secure or set it to true')
    .optional(),
  cookie_httponly: z
    .literal(true, 'Gatehouse cookies are always HttpOnly; remove cookie_httponly or set it to true')
    .optional(),
  cookie_http_only: z
    .literal(true, 'Gatehouse cookies are always HttpOnly; remove cookie_http_only or set it to true')
    .optional(),
  email_domains: z.array(z.string().min(1)).optional(),
  authenticated_emails_file: z.string().optional(),
  allowed_groups: z.array(z.string().min(1)).optional(),
  allowed_roles: z.array(z.string().min(1)).optional(),
  /** Entra ID: tenant ids (GUIDs) whose users may sign in, or ["*"]; required with a common/organizations issuer. */
  allowed_tenants: z
    .array(
      z
        .string()
        .regex(
          /^(\*|[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12})$/,
          'a tenant id is a GUID, or "*"',
        ),
    )
    .optional(),
  /** X-Auth-Request-User, -Email, -Preferred-Username, -Groups on the upstream request (and on /oauth2/auth answers). */
  set_xauthrequest: z.boolean().default(true),
  /** X-Forwarded-User, -Email, -Preferred-Username, -Groups on the upstream request. */
  pass_user_headers: z.boolean().default(true),
  /** X-Auth-Request-Access-Token / X-Forwarded-Access-Token. */
  pass_access_token: z.boolean().default(false),
  /** Authorization: Bearer <token> to the upstream; which token is authorization_token. */
  pass_authorization_header: z.boolean().default(false),
  /** Gatehouse-only: "access_token" (default, what APIs expect) or "id_token" (oauth2-proxy's legacy behaviour). */
  authorization_token: z.enum(['access_token', 'id_token']).default('access_token'),
  prefer_email_to_user: z.boolean().default(false),
  /** "regex" or "METHOD=regex" or "METHOD!=regex", matched on the normalized path only (no query, no fragment). */
  skip_auth_routes: z.array(z.string().min(1)).default([]),
  /** Regular expressions on the normalized path whose anonymous requests get 401, never a login redirect. */
  api_routes: z.array(regex).default([]),
  /** Domains (".example.com" = any subdomain, "example.com", "example.com:8443") that rd may point at besides the site itself. */
  whitelist_domains: z.array(z.string().min(1)).default([]),
  skip_jwt_bearer_tokens: z.boolean().default(false),
  /** "issuer=audience" pairs whose bearer JWTs are accepted too (with skip_jwt_bearer_tokens). */
  extra_jwt_issuers: z.array(z.string().regex(/^[^=]+=[^=]+$/, 'the form is "issuer=audience"')).default([]),
  /** Client addresses or CIDR ranges whose requests skip authentication (no identity headers are added). */
  trusted_ips: z
    .array(
      z.string().refine((value) => {
        const [address, bits, extra] = value.split('/');
        const family = net.isIP(address ?? '');
        return (
          family !== 0 &&
          extra === undefined &&
          (bits === undefined || (/^\d+$/.test(bits) && Number(bits) <= (family === 4 ? 32 : 128)))
        );
      }, 'not an IP address or CIDR range (examples: "10.0.0.0/8", "::1")'),
    )
    .default([]),
});

export type AuthInput = z.output<typeof authSchema>;

/** oauth2-proxy options a pasted config may carry, with why Gatehouse refuses them. */
export const UNSUPPORTED_AUTH_OPTIONS: Record<string, string> = {
  http_address: 'Gatehouse serves every site itself; listeners are set in gatehouse.toml [https]/[http]',
  https_address: 'listeners are set in gatehouse.toml [https]',
  metrics_address: 'set gatehouse.toml [metrics] listen',
  upstreams: "upstreams are the site's [[routes]] and [upstreams.NAME]",
  request_logging: 'access logging is gatehouse.toml [log] access_log',
  reverse_proxy: 'forwarded headers are trusted per peer with gatehouse.toml [proxy] trusted_proxies',
  cookie_domains: 'Gatehouse takes one domain: cookie_domain = ".example.com"',
  cookie_path: 'the session cookie is a __Host- cookie, which requires Path=/',
  cookie_csrf_per_request: 'login state is always kept per state value, so parallel logins always work',
  cookie_csrf_expire: 'login state lives 10 minutes',
  session_store_type: 'sessions are always server-side; the store is gatehouse.toml [session]',
  redis_connection_url: 'the session store is gatehouse.toml [session] (embedded SQLite)',
  session_cookie_minimal: 'the session cookie never holds tokens',
  code_challenge_method: 'PKCE S256 is always used',
  insecure_oidc_skip_nonce: 'the nonce is always checked',
  insecure_oidc_skip_issuer_verification: 'the issuer is always verified (Entra multi-tenant: use allowed_tenants)',
  insecure_oidc_allow_unverified_email: 'not supported',
  ssl_insecure_skip_verify: 'TLS to the identity provider is always verified',
  skip_provider_button: 'anonymous navigations always go straight to the provider; /oauth2/sign_in shows the button',
  skip_auth_preflight: 'not supported; list the path in skip_auth_routes as "OPTIONS=regex"',
  skip_auth_strip_headers: 'identity headers sent by clients are always removed',
  skip_auth_regex: 'use skip_auth_routes',
  entra_id_allowed_tenants: 'use allowed_tenants',
  oidc_email_claim: 'the email and user rules are fixed (see README, "Who the user is")',
  user_id_claim: 'the email and user rules are fixed (see README, "Who the user is")',
  oidc_groups_claim: 'groups come from the "groups" claim (Entra overage: Microsoft Graph)',
  oidc_jwks_url: "keys come from the issuer's discovery document",
  skip_oidc_discovery: 'discovery is always used',
  login_url: "endpoints come from the issuer's discovery document",
  redeem_url: "endpoints come from the issuer's discovery document",
  profile_url: "endpoints come from the issuer's discovery document",
  validate_url: "endpoints come from the issuer's discovery document",
  htpasswd_file: 'not supported',
  pass_basic_auth: 'not supported',
  pass_host_header: 'the Host header is always passed',
  set_authorization_header: 'use pass_authorization_header',
  custom_templates_dir: 'not supported',
  banner: 'not supported',
  footer: 'not supported',
  provider_display_name: 'not supported',
  approval_prompt: 'not supported',
  prompt: 'not supported',
  email_domain: 'the option is email_domains (a list)',
};

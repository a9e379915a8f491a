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
  /** Or client_secret_file: a file holding it (relative to the config folder). */
  client_secret: z.string().min(1).optional(),
  client_secret_file: z.string().min(1).optional(),
  /** Defaults to https://<the request's host>/oauth2/callback (register it at the provider for every server name). */
  redirect_url: z.url({ protocol: /^https$/, message: 'redirect_url must be an https:// URL' }).optional(),
  scope: z.string().default('openid email profile offline_access'),
  /** The session cookie's name; Gatehouse adds the __Host- prefix (Secure, Path=/, no Domain), or __Secure- with cookie_domain. */
  cookie_name: z
    .string()
    .regex(/^[A-Za-z0-9_-]+$/, 'cookie names are letters, digits, "_" and "-"')
    .default('_gatehouse'),
  /** 16, 24 or 32 bytes, raw or base64/base64url encoded (as oauth2-proxy). Keys for cookies and encryption at rest derive from it. */
  cookie_secret: z.string().min(16).optional(),
  /** A file holding the cookie secret (relative to the config folder), instead of cookie_secret. */
  cookie_secret_file: z.string().min(1).optional(),
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

const LOGGING =
  'logging is gatehouse.toml [log] (level, format, access_log): JSON lines on stdout, rotated by journald or the container runtime';
const SESSION_STORE =
  'sessions are always server-side, in gatehouse.toml [session] (store = "sqlite" or "memory"; [store] backend = "redis" to share them across instances)';
const REDIS_CLUSTER =
  'Redis Cluster is not supported: gatehouse.toml [store] takes one Redis (url) or Redis Sentinel (sentinels + master_name)';
const TLS =
  "TLS is terminated by Gatehouse with the site's [tls] certificate on gatehouse.toml [https] listeners (Mozilla intermediate profile)";
const DISCOVERY = "endpoints and keys come from the issuer's discovery document (oidc_issuer_url)";
const TEMPLATES = "Gatehouse's own pages are not customizable";
const PROVIDER_SPECIFIC =
  'only OpenID Connect providers are supported (provider = "oidc" or "entra-id"); use allowed_groups / allowed_roles on their claims';

/** oauth2-proxy options a pasted config may carry, with why Gatehouse refuses them (every option of its
 *  configuration overview: https://oauth2-proxy.github.io/oauth2-proxy/configuration/overview). */
export const UNSUPPORTED_AUTH_OPTIONS: Record<string, string> = {
  // Server, listeners, TLS
  http_address: 'Gatehouse serves every site itself; listeners are set in gatehouse.toml [https]/[http]',
  https_address: 'listeners are set in gatehouse.toml [https]',
  metrics_address: 'set gatehouse.toml [metrics] listen',
  metrics_secure_address: 'set gatehouse.toml [metrics] listen (plain HTTP; keep it on a private address)',
  metrics_tls_cert_file: 'the [metrics] listener is plain HTTP; keep it on a private address',
  metrics_tls_key_file: 'the [metrics] listener is plain HTTP; keep it on a private address',
  tls_cert_file: TLS,
  tls_key_file: TLS,
  tls_cipher_suites: TLS,
  tls_min_version: TLS,
  force_https: 'HTTPS is the only way to a site; [http] listeners answer with a redirect to HTTPS',
  proxy_prefix: 'the endpoints are always under /oauth2/',
  ping_path: 'health endpoints are /ping and /ready on gatehouse.toml [metrics] listen',
  ping_user_agent: 'health endpoints are /ping and /ready on gatehouse.toml [metrics] listen',
  ready_path: 'health endpoints are /ping and /ready on gatehouse.toml [metrics] listen',
  gcp_healthchecks: 'health endpoints are /ping and /ready on gatehouse.toml [metrics] listen',
  // Upstreams
  upstreams: "upstreams are the site's [[routes]] and [upstreams.NAME]",
  pass_host_header: 'the Host header is always passed',
  proxy_websockets: 'WebSocket upgrades are forwarded per route: websocket = true (the default) or false',
  flush_interval: 'responses are streamed as they come (no buffering)',
  upstream_timeout: 'set read_timeout (and connect_timeout, send_timeout) in [proxy] or on the route',
  ssl_upstream_insecure_skip_verify: 'TLS to upstreams is always verified',
  allow_query_semicolons: 'the query is passed to the upstream as sent',
  reverse_proxy: 'forwarded headers are trusted per peer with gatehouse.toml [proxy] trusted_proxies',
  real_client_ip_header:
    'the client address comes from X-Forwarded-For of peers in gatehouse.toml [proxy] trusted_proxies',
  // Logging
  request_logging: 'access logging is gatehouse.toml [log] access_log',
  request_logging_format: LOGGING,
  auth_logging: LOGGING,
  auth_logging_format: LOGGING,
  standard_logging: LOGGING,
  standard_logging_format: LOGGING,
  errors_to_info_log: LOGGING,
  exclude_logging_paths: LOGGING,
  silence_ping_logging: "the [metrics] listener's /ping and /ready are never logged",
  logging_filename: LOGGING,
  logging_max_size: LOGGING,
  logging_max_age: LOGGING,
  logging_max_backups: LOGGING,
  logging_local_time: LOGGING,
  logging_compress: LOGGING,
  request_id_header: "the request id is always X-Request-Id, made by Gatehouse (a client's is replaced)",
  // Cookies and sessions
  cookie_domains: 'Gatehouse takes one domain: cookie_domain = ".example.com"',
  cookie_path: 'the session cookie always has Path=/ (a __Host- cookie requires it)',
  cookie_csrf_per_request: 'login state is always kept per state value, so parallel logins always work',
  cookie_csrf_expire: 'login state lives 10 minutes',
  session_store_type: SESSION_STORE,
  session_cookie_minimal: 'the session cookie never holds tokens',
  redis_connection_url: SESSION_STORE,
  redis_cluster_connection_urls: REDIS_CLUSTER,
  redis_sentinel_connection_urls: SESSION_STORE,
  redis_sentinel_master_name: SESSION_STORE,
  redis_sentinel_password:
    'Sentinels that ask for a password are not supported: gatehouse.toml [store] password is the Redis server’s',
  redis_password: SESSION_STORE,
  redis_username: SESSION_STORE,
  redis_use_cluster: REDIS_CLUSTER,
  redis_use_sentinel: SESSION_STORE,
  redis_insecure_skip_tls_verify:
    'TLS to Redis is always verified: give its CA as gatehouse.toml [store] ca (oauth2-proxy redis_ca_path)',
  redis_ca_path: SESSION_STORE,
  redis_connection_idle_timeout:
    'Gatehouse keeps no pool of idle Redis connections: one command connection, PINGed every second, and one pub/sub connection, each reopened by itself if Redis closes it',
  // Provider and OpenID Connect
  code_challenge_method: 'PKCE S256 is always used',
  insecure_oidc_skip_nonce: 'the nonce is always checked',
  insecure_oidc_skip_issuer_verification: 'the issuer is always verified (Entra multi-tenant: use allowed_tenants)',
  insecure_oidc_allow_unverified_email: 'an email the provider marks unverified is never used',
  ssl_insecure_skip_verify: 'TLS to the identity provider is always verified',
  provider_ca_files: 'the identity provider is verified against the system trust store (NODE_EXTRA_CA_CERTS adds a CA)',
  use_system_trust_store:
    'the identity provider is verified against the system trust store (NODE_EXTRA_CA_CERTS adds a CA)',
  skip_provider_button: 'anonymous navigations always go straight to the provider; /oauth2/sign_in shows the button',
  entra_id_allowed_tenants: 'use allowed_tenants',
  entra_id_federated_token_auth: 'the client authenticates with client_secret',
  azure_tenant: 'the tenant is part of oidc_issuer_url (https://login.microsoftonline.com/TENANT/v2.0)',
  azure_graph_group_field: 'groups are object ids from the "groups" claim or Microsoft Graph (overage)',
  oidc_email_claim: 'the email and user rules are fixed (see README, "Who the user is")',
  user_id_claim: 'the email and user rules are fixed (see README, "Who the user is")',
  oidc_groups_claim: 'groups come from the "groups" claim (Entra overage: Microsoft Graph)',
  oidc_audience_claims: 'the ID token audience must be client_id (bearer tokens: extra_jwt_issuers)',
  oidc_extra_audiences: 'the ID token audience must be client_id (bearer tokens: extra_jwt_issuers)',
  oidc_jwks_url: DISCOVERY,
  oidc_public_key_file: DISCOVERY,
  skip_oidc_discovery: DISCOVERY,
  login_url: DISCOVERY,
  redeem_url: DISCOVERY,
  profile_url: DISCOVERY,
  validate_url: DISCOVERY,
  pubjwk_url: DISCOVERY,
  skip_claims_from_profile_url: 'claims come from the ID token (and Microsoft Graph for Entra group overage)',
  backend_logout_url: "sign-out uses the provider's end_session_endpoint (RP-Initiated Logout)",
  acr_values: 'not supported: require MFA or other policies at the provider (Entra: Conditional Access)',
  approval_prompt: 'not supported: the provider decides when to ask for consent',
  prompt: 'not supported: the provider decides when to ask for consent',
  jwt_key: 'private-key JWT client authentication (login.gov) is not supported; use client_secret',
  jwt_key_file: 'private-key JWT client authentication (login.gov) is not supported; use client_secret',
  encode_state: 'the state is always an opaque random value',
  relative_redirect_url: 'redirect_url is an absolute https:// URL, or unset for https://<host>/oauth2/callback',
  signature_key: 'GAP-Signature request signing is not supported; upstreams get the identity headers',
  // Other providers' options
  github_org: PROVIDER_SPECIFIC,
  github_team: PROVIDER_SPECIFIC,
  github_repo: PROVIDER_SPECIFIC,
  github_token: PROVIDER_SPECIFIC,
  github_users: PROVIDER_SPECIFIC,
  gitlab_groups: PROVIDER_SPECIFIC,
  gitlab_projects: PROVIDER_SPECIFIC,
  google_admin_email: PROVIDER_SPECIFIC,
  google_group: PROVIDER_SPECIFIC,
  google_groups: PROVIDER_SPECIFIC,
  google_service_account_json: PROVIDER_SPECIFIC,
  google_use_application_default_credentials: PROVIDER_SPECIFIC,
  google_target_principal: PROVIDER_SPECIFIC,
  keycloak_groups: PROVIDER_SPECIFIC,
  bitbucket_team: PROVIDER_SPECIFIC,
  bitbucket_repository: PROVIDER_SPECIFIC,
  // Access rules and headers
  htpasswd_file: 'password logins are not supported; only OpenID Connect',
  htpasswd_user_groups: 'password logins are not supported; only OpenID Connect',
  display_htpasswd_form: 'password logins are not supported; only OpenID Connect',
  basic_auth_password:
    'HTTP Basic credentials are never sent upstream; identity goes in X-Forwarded-* / X-Auth-Request-* headers',
  pass_basic_auth: 'HTTP Basic credentials are never sent upstream; use pass_user_headers',
  set_basic_auth: 'HTTP Basic credentials are never sent; use set_xauthrequest',
  set_authorization_header: 'use pass_authorization_header',
  skip_auth_preflight: 'not supported; list the path in skip_auth_routes as "OPTIONS=regex"',
  skip_auth_strip_headers: 'identity headers sent by clients are always removed',
  skip_auth_regex: 'use skip_auth_routes',
  force_json_errors: 'errors are JSON when the client accepts JSON, and api_routes answer 401 instead of a redirect',
  // Pages
  custom_templates_dir: TEMPLATES,
  custom_sign_in_logo: TEMPLATES,
  banner: TEMPLATES,
  footer: TEMPLATES,
  provider_display_name: TEMPLATES,
  show_debug_on_error: 'error pages never show internals; the request id finds the log line',
  // Spellings of options Gatehouse has under another name
  email_domain: 'the option is email_domains (a list)',
  allowed_group: 'the option is allowed_groups (a list)',
  whitelist_domain: 'the option is whitelist_domains (a list)',
  skip_auth_route: 'the option is skip_auth_routes (a list)',
  api_route: 'the option is api_routes (a list)',
  trusted_ip: 'the option is trusted_ips (a list)',
};

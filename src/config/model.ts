// The validated configuration: what loadConfig returns (deeply frozen) and every other folder reads.
// Types only; the settings as written in the files are in schema.ts, how they become these types in load.ts and site.ts.
import type { GlobalSettings, ListenAddress } from './schema.ts';
import type { Template } from './templates.ts';

export type { ListenAddress };

export interface Config {
  dir: string;
  file: string;
  https: GlobalSettings['https'];
  http: GlobalSettings['http'];
  log: GlobalSettings['log'];
  proxy: GlobalSettings['proxy'];
  lifecycle: GlobalSettings['lifecycle'];
  session: GlobalSettings['session'] & { file: string };
  metrics: GlobalSettings['metrics'];
  /** Where sessions are shared: this machine, or Redis for several (store-config.ts). */
  store: StoreConfig;
  /** Serving processes, "auto" resolved to the number of cores. */
  workers: number;
  acme: AcmeConfig;
  sites: Site[];
}

export interface Site {
  /** The first server name: how logs and errors name the site. */
  name: string;
  file: string;
  serverNames: string[];
  /** Certificate files read at load time, or obtained and renewed by ACME (src/acme/) into the [acme] storage folder. */
  tls: FileTls | { source: 'acme' };
  upstreams: Record<string, UpstreamGroup>;
  /** Longest prefix first, so the first match is the right one. */
  routes: Route[];
  denyPaths: RegExp[];
  /** OpenID Connect settings; undefined = a public site. */
  auth?: AuthSettings;
  /** The Strict-Transport-Security value sent on every HTTPS response of the site; undefined = none. */
  hsts?: string;
  /** The site's response_headers and ip_rules, for answers given before a route is chosen (/oauth2/*, 404, …). */
  responseHeaders: ResponseHeaders;
  ipRules?: IpRule[];
  rateLimit?: RateLimit;
}

/** Lower-cased name → value; "" = remove the upstream's header. */
export type ResponseHeaders = Readonly<Record<string, string>>;

/** One request_headers entry: lower-cased name and its value (empty template = remove the header). */
export interface RequestHeaderRule {
  name: string;
  value: Template;
}

/** "allow 10.0.0.0/8" / "deny all": a range (address or CIDR) or every address. */
export interface IpRule {
  allow: boolean;
  range: { address: string; bits: number; family: 'ipv4' | 'ipv6' } | 'all';
}

/** limit_req: the bucket drains at `perSecond`; `burst` requests more are served at once, the rest get 429. */
export interface RateLimit {
  perSecond: number;
  burst: number;
}

export interface FileTls {
  source: 'files';
  certFile: string;
  keyFile: string;
  certPem: string;
  keyPem: string;
}

export interface UpstreamGroup {
  name: string;
  servers: string[];
  failTimeoutMs: number;
  keepalive: number;
  maxPending: number;
  /** PEM of the CAs trusted for its https:// servers; undefined = Node's bundled roots. */
  caPem?: string;
  healthCheck?: HealthCheck;
}

export interface HealthCheck {
  path: string;
  intervalMs: number;
  timeoutMs: number;
  healthy: number;
  unhealthy: number;
  /** Passing statuses: min..max inclusive ("2xx" = 200..299). */
  status: { min: number; max: number };
}

export interface Route {
  path: string;
  action: RouteAction;
  websocket: boolean;
  /** %2F / %5C and ";" in the path are accepted (and stay literal) on this route only when it says so. */
  allowEncodedSlashes: boolean;
  allowPathParameters: boolean;
  maxBodySize: number;
  connectTimeoutMs: number;
  sendTimeoutMs: number;
  readTimeoutMs: number;
  bodyTimeoutMs: number;
  requestBuffering: boolean;
  /** The site's response_headers with the route's over them. */
  responseHeaders: ResponseHeaders;
  /** The site's request_headers with the route's over them, applied after Gatehouse's own headers. */
  requestHeaders: RequestHeaderRule[];
  /** The route's ip_rules, else the site's (nginx: a location with its own allow/deny inherits none). */
  ipRules?: IpRule[];
  /** The route's rate_limit, else the site's. */
  rateLimit?: RateLimit;
  /** The route's path is replaced by this one in the path the upstream receives. */
  rewritePrefix?: string;
}

export type RouteAction =
  | { kind: 'proxy'; upstream: string }
  | { kind: 'static'; root: string; index: string[] }
  | { kind: 'status'; status: number }
  | { kind: 'redirect'; location: Template; status: 301 | 302 | 303 | 307 | 308 };

/** A site's [auth] table, checked and decoded (auth-settings.ts). */
export interface AuthSettings {
  provider: 'oidc' | 'entra-id';
  issuer: string;
  clientId: string;
  clientSecret: string;
  /** undefined = https://<Host of the request>/oauth2/callback (Host is bound to the TLS server name, so it is safe). */
  redirectUrl?: string;
  scope: string;
  /** Session cookie name, with the __Host- prefix, or __Secure- when it has a Domain (cookieDomain). */
  cookieName: string;
  /** The session cookie's Domain (no leading dot): sites under it share one login; undefined = this host only. */
  cookieDomain?: string;
  /** The decoded cookie secret; every key Gatehouse uses for this site derives from it (HKDF). */
  secret: Buffer;
  cookieExpireMs: number;
  cookieRefreshMs: number;
  sameSite: 'Lax' | 'Strict';
  emailDomains?: string[];
  authenticatedEmailsFile?: string;
  allowedGroups?: string[];
  allowedRoles?: string[];
  /** Lower-case GUIDs, or "*"; undefined = only the configured tenant (single-tenant issuer). */
  allowedTenants?: string[];
  setXAuthRequest: boolean;
  passUserHeaders: boolean;
  passAccessToken: boolean;
  passAuthorizationHeader: boolean;
  authorizationToken: 'access_token' | 'id_token';
  preferEmailToUser: boolean;
  skipAuthRoutes: SkipAuthRoute[];
  apiRoutes: RegExp[];
  whitelistDomains: string[];
  skipJwtBearerTokens: boolean;
  extraJwtIssuers: { issuer: string; audience: string }[];
  /** Client addresses (ranges) whose requests skip authentication (oauth2-proxy trusted_ips). */
  trustedIps: string[];
}

export interface SkipAuthRoute {
  method?: string;
  negate: boolean;
  pattern: RegExp;
}

/** [acme] with paths resolved and the named directory replaced by its URL (acme-config.ts). */
export interface AcmeConfig {
  directoryUrl: string;
  email?: string;
  termsOfServiceAgreed: boolean;
  storageDir: string;
  accountKeyFile: string;
  renewRatio: number;
  profile?: string;
  httpPort: number;
  checkIntervalMs: number;
  retryMinMs: number;
  retryMaxMs: number;
  caRootPem?: string;
}

/** [store] resolved (store-config.ts): "local" = the [session] store of this machine; "redis" = shared through Redis. */
export type StoreConfig =
  | { backend: 'local'; prefix: string; commandTimeoutMs: number; graceMs: number }
  | {
      backend: 'redis';
      prefix: string;
      commandTimeoutMs: number;
      graceMs: number;
      redis: RedisAddress;
      /** [store] encryption_key decoded (32 bytes): seals the ACME private keys kept in Redis. */
      encryptionKey?: Buffer;
    };

export interface RedisAddress {
  /** Empty with Sentinel (the Sentinels name the master). */
  host: string;
  port: number;
  db: number;
  username?: string;
  password?: string;
  /** rediss://: TLS to Redis, verified against the system CAs plus caPem. */
  tls: boolean;
  caPem?: string;
  sentinels: { host: string; port: number }[];
  masterName?: string;
}

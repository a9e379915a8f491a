// The validated configuration: what loadConfig returns (deeply frozen) and every other folder reads.
// Types only; the settings as written in the files are in schema.ts, how they become these types in load.ts and site.ts.
import type { GlobalSettings, ListenAddress } from './schema.ts';

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
}

export type RouteAction =
  | { kind: 'proxy'; upstream: string }
  | { kind: 'static'; root: string; index: string[] }
  | { kind: 'status'; status: number };

/** A site's [auth] table, checked and decoded (auth-settings.ts). */
export interface AuthSettings {
  provider: 'oidc' | 'entra-id';
  issuer: string;
  clientId: string;
  clientSecret: string;
  /** undefined = https://<Host of the request>/oauth2/callback (Host is bound to the TLS server name, so it is safe). */
  redirectUrl?: string;
  scope: string;
  /** Session cookie name, always with the __Host- prefix. */
  cookieName: string;
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

// The shape of gatehouse.toml and of each config/sites/*.toml, with defaults.
// Strict objects: an unknown key is an error, never silently ignored.
// Knob names follow nginx (proxy) and oauth2-proxy (auth) so existing configs translate line by line.
import net from 'node:net';
import { z } from 'zod';
import { authSchema } from './auth-schema.ts';
import { duration, size } from './units.ts';

export interface ListenAddress {
  host: string;
  port: number;
}

/** "0.0.0.0:443", "[::]:443", "127.0.0.1:0", or a bare port meaning 0.0.0.0 (nginx `listen 443`). */
const listenAddress = z.union([z.string(), z.number()]).transform((value, ctx): ListenAddress => {
  const text = String(value).trim();
  const match = /^(?:\[([0-9a-fA-F:.]+)\]|([0-9.]+|localhost)):(\d{1,5})$/.exec(text) ?? /^()()(\d{1,5})$/.exec(text);
  const host = match ? match[1] || match[2] || '0.0.0.0' : '';
  const port = match ? Number(match[3]) : NaN;
  if (!match || port > 65535 || (host !== 'localhost' && net.isIP(host) === 0)) {
    ctx.addIssue({
      code: 'custom',
      message: `"${text}" is not a listen address (examples: "0.0.0.0:443", "[::]:443", 443)`,
    });
    return z.NEVER;
  }
  return { host, port };
});

const cidr = z.string().refine((value) => {
  const [address, bits, extra] = value.split('/');
  const family = net.isIP(address ?? '');
  if (family === 0 || extra !== undefined) return false;
  if (bits === undefined) return true;
  return /^\d+$/.test(bits) && Number(bits) <= (family === 4 ? 32 : 128);
}, 'not an IP address or CIDR range (examples: "10.0.0.0/8", "::1")');

const upstreamUrl = z.string().refine((value) => {
  try {
    const url = new URL(value);
    return (
      (url.protocol === 'http:' || url.protocol === 'https:') &&
      url.hostname !== '' &&
      (url.pathname === '/' || url.pathname === '') &&
      url.search === '' &&
      url.hash === '' &&
      url.username === '' &&
      url.password === ''
    );
  } catch {
    return false;
  }
}, 'upstream servers are http:// or https:// URLs with a host and optional port, no path, query or credentials');

const serverName = z
  .string()
  .toLowerCase()
  .refine(
    (name) =>
      /^(\*\.)?([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)(\.[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)*$/.test(name) &&
      name.length <= 253,
    'not a host name (examples: "code.example.com", "*.example.com")',
  );

/** A header field name (RFC 9110 §5.1: a token). */
const headerName = z.string().regex(/^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/, 'not a header name (letters, digits, "-")');
/** Header values are printable ASCII; a line break would start another header (response splitting). */
const headerValue = z.string().regex(/^[\t\x20-\x7e]*$/, 'header values are printable ASCII, no line breaks');

/** Knobs a site sets for every route and a route for itself (the route's win, as nginx's location-level directives do). */
const accessKnobs = {
  /** nginx add_header NAME VALUE always: on every answer, ours included; "" removes the upstream's header. */
  response_headers: z.record(headerName, headerValue).optional(),
  /** nginx proxy_set_header NAME VALUE, with nginx variables ($remote_addr, $http_NAME, …); "" removes the header. */
  request_headers: z.record(headerName, headerValue).optional(),
  /** nginx allow/deny: "allow 10.0.0.0/8", "deny all"; the first rule that matches the client address decides. */
  ip_rules: z.array(z.string()).optional(),
  /** nginx limit_req (nodelay) per client address: rate "10r/s" or "600r/m", burst requests served at once beyond it. */
  rate_limit: z
    .strictObject({
      rate: z.string().regex(/^[1-9]\d*r\/[sm]$/, 'a rate is "10r/s" or "600r/m"'),
      burst: z.number().int().min(0).max(1_000_000).default(0),
    })
    .optional(),
};

/** Proxy knobs that a route may set and gatehouse.toml's [proxy] defaults for every route (nginx defaults). */
const proxyKnobs = {
  max_body_size: size.optional(),
  connect_timeout: duration.optional(),
  send_timeout: duration.optional(),
  read_timeout: duration.optional(),
  body_timeout: duration.optional(),
  request_buffering: z.boolean().optional(),
};

export const globalSchema = z.strictObject({
  https: z
    .strictObject({
      listen: z
        .array(listenAddress)
        .min(1)
        .default([{ host: '0.0.0.0', port: 443 }]),
      /** A server name of the site that answers clients without SNI or with an unknown name; unset = refuse the handshake. */
      default_site: serverName.optional(),
      /** Streams one HTTP/2 connection may have open at once (nginx http2_max_concurrent_streams); more are refused. */
      http2_max_concurrent_streams: z
        .number()
        .int()
        .min(1)
        .max(2 ** 31 - 1)
        .default(128),
      /** Streams one HTTP/2 client may reset: this many at once, refilled at this many per 10 s (rapid reset, CVE-2023-44487). */
      http2_max_resets: z.number().int().min(1).max(1_000_000).default(200),
      /** Every connection starts with a PROXY protocol header (v1 or v2) from an L4 balancer in [proxy] trusted_proxies. */
      proxy_protocol: z.boolean().default(false),
    })
    .prefault({}),
  http: z
    .strictObject({
      listen: z.array(listenAddress).default([]),
      /** Port written into the 308 redirect; defaults to the first HTTPS listener's port. */
      https_port: z.number().int().min(1).max(65535).optional(),
      /** Every connection starts with a PROXY protocol header (v1 or v2) from an L4 balancer in [proxy] trusted_proxies. */
      proxy_protocol: z.boolean().default(false),
    })
    .prefault({}),
  log: z
    .strictObject({
      level: z.enum(['trace', 'debug', 'info', 'warn', 'error', 'fatal', 'silent']).default('info'),
      format: z.enum(['json', 'pretty']).default('json'),
      access_log: z.boolean().default(true),
    })
    .prefault({}),
  proxy: z
    .strictObject({
      /** Peers whose X-Forwarded-For / -Proto / -Host are believed (nginx set_real_ip_from). Everyone else's are replaced. */
      trusted_proxies: z.array(cidr).default([]),
      max_body_size: size.default(1024 * 1024),
      connect_timeout: duration.default(60_000),
      send_timeout: duration.default(60_000),
      read_timeout: duration.default(60_000),
      /** Longest silence between two chunks of a request body (nginx client_body_timeout): 408, or the exchange is cut. */
      body_timeout: duration.default(60_000),
      request_buffering: z.boolean().default(false),
    })
    .prefault({}),
  lifecycle: z
    .strictObject({
      /** In-flight requests get this long to finish after SIGTERM/SIGINT. */
      shutdown_grace: duration.default(30_000),
      /** workers > 1: a worker that does not listen this long after it was started is killed and replaced. */
      start_timeout: duration.default(60_000),
    })
    .prefault({}),
  /** Automatic certificates (sites with `[tls] acme = true`), after Caddy/CertMagic. */
  acme: z
    .strictObject({
      /** "production" (Let's Encrypt), "staging" (Let's Encrypt staging) or the https:// URL of any ACME directory. */
      directory: z
        .string()
        .default('production')
        .refine(
          (value) => value in ACME_DIRECTORIES || /^https:\/\/[^\s/]+/.test(value),
          'use "production", "staging" or an https:// ACME directory URL',
        ),
      /** Contact address given to the CA (expiry and policy mails). */
      email: z
        .string()
        .regex(/^[^\s@]+@[^\s@]+$/, 'not an e-mail address')
        .optional(),
      /** You agree to the CA's subscriber agreement / terms of service; required before any order is placed. */
      terms_of_service_agreed: z.boolean().default(false),
      /** Folder for obtained certificates (<domain>/fullchain.pem, privkey.pem, meta.json), relative to the config folder. */
      storage: z.string().default('../certs'),
      /** The ACME account key (made once, then reused), relative to the storage folder. */
      account_key: z.string().default('acme-account.key'),
      /** Renew when less than this share of a certificate's lifetime remains (1/3: day 60 of 90, day 4 of 6). */
      renew_ratio: z
        .number()
        .gt(0)
        .lt(1)
        .default(1 / 3),
      /** ACME profile to request (e.g. "shortlived", "tlsserver"); only where the CA offers profiles. */
      profile: z.string().min(1).optional(),
      /** Port the CA connects to for HTTP-01; with no [http] listen, Gatehouse listens on 0.0.0.0:<http_port>. */
      http_port: z.number().int().min(1).max(65535).default(80),
      /** How often every certificate is looked at (CertMagic: 10 minutes). */
      check_interval: duration.default(600_000),
      /** Failed orders are retried after retry_min, doubling up to retry_max, for as long as it takes. */
      retry_min: duration.default(60_000),
      retry_max: duration.default(6 * 3_600_000),
      /** Extra CA certificate (PEM file, relative to the config folder) trusted for the ACME server: private CAs, Pebble. */
      ca_root: z.string().optional(),
    })
    .prefault({}),
  /** Server-side login sessions of sites with [auth]. */
  session: z
    .strictObject({
      /** sqlite: sessions survive a restart (embedded node:sqlite); memory: they do not (tests, throw-away setups). */
      store: z.enum(['sqlite', 'memory']).default('sqlite'),
      /** The SQLite file, relative to the config folder. Tokens in it are encrypted with a key derived from each site's cookie_secret. */
      path: z.string().default('state/sessions.sqlite'),
      /** Decrypted sessions kept in memory in front of the store. */
      cache_size: z.number().int().min(1).default(10_000),
    })
    .prefault({}),
  /** Where sessions, refresh leases and jti replay marks are shared: "local" (this machine: [session] store) or
   *  "redis" (Redis or Valkey, shared by every Gatehouse machine that names the same server and prefix). */
  store: z
    .strictObject({
      backend: z.enum(['local', 'redis']).default('local'),
      /** redis://[user:password@]host:port[/db] or rediss:// (TLS); unset with sentinels. */
      url: z
        .string()
        .refine((value) => /^rediss?:\/\/[^\s/]/.test(value), 'use redis://host:port or rediss://host:port')
        .optional(),
      /** The Redis password (AUTH), for example "${file:secrets/redis-password}"; overrides one in the url. */
      password: z.string().min(1).optional(),
      /** Extra CA certificate (PEM file, relative to the config folder) trusted for rediss://. */
      ca: z.string().optional(),
      /** Prepended to every key and channel, so several deployments can share one Redis. */
      prefix: z.string().min(1).default('gatehouse:'),
      /** Redis Sentinel addresses ("host:port"); with master_name, the master is found through them. */
      sentinels: z
        .array(z.string().regex(/^[^\s:]+:\d{1,5}$|^\[[0-9a-fA-F:.]+\]:\d{1,5}$/, 'use "host:port"'))
        .default([]),
      master_name: z.string().min(1).optional(),
      /** A Redis command not answered in this time fails (the request it serves does not wait longer). */
      command_timeout: duration.default(500),
      /** While Redis cannot be reached, sessions cached in memory keep working this long. */
      grace: duration.default(300_000),
      /** With backend = "redis": the key (32 bytes, base64 or raw; e.g. "${file:secrets/store-key}") that encrypts
       *  ACME private keys at rest in Redis (AES-256-GCM). Required when a site uses tls.acme. */
      encryption_key: z.string().min(1).optional(),
    })
    .prefault({}),
  /** Process-wide health and metrics listener (oauth2-proxy metrics_address): /ping, /ready, /metrics (Prometheus). */
  metrics: z
    .strictObject({
      listen: listenAddress.optional(),
    })
    .prefault({}),
  /** Folder of per-domain site files, relative to the config folder. */
  sites_dir: z.string().default('sites'),
  /** Processes that serve (like nginx worker_processes): "auto" = one per core; 1 = no cluster. */
  workers: z.union([z.literal('auto'), z.number().int().min(1).max(256)]).default('auto'),
});

export const ACME_DIRECTORIES: Record<string, string> = {
  production: 'https://acme-v02.api.letsencrypt.org/directory',
  staging: 'https://acme-staging-v02.api.letsencrypt.org/directory',
};

export const DEFAULT_MAX_PENDING = 1024;

const upstreamGroup = z.strictObject({
  servers: z.array(upstreamUrl).min(1),
  /** Passive health (nginx max_fails/fail_timeout): a server that refused a connection is skipped for this long. */
  fail_timeout: duration.default(10_000),
  /** Keep-alive connections per server. */
  keepalive: z.number().int().min(1).max(10_000).default(64),
  /** Requests that may wait for a free connection when every one is busy; beyond that 503 (Envoy max_pending_requests). */
  max_pending: z.number().int().min(0).max(1_000_000).default(DEFAULT_MAX_PENDING),
  /** PEM file of the certificate authorities trusted for https:// servers of this group (instead of the system's). */
  ca: z.string().min(1).optional(),
  /** Active health (nginx Plus health_check, Envoy health_checks): each server is asked for `path` every `interval`. */
  health_check: z
    .strictObject({
      path: z.string().regex(/^\/[\x21-\x7e]*$/, 'a path starting with "/", printable ASCII'),
      interval: duration.default(5_000),
      timeout: duration.default(2_000),
      /** Consecutive passed checks that bring a down server back, failed checks that take it down. */
      healthy: z.number().int().min(1).max(100).default(2),
      unhealthy: z.number().int().min(1).max(100).default(3),
      /** The statuses that pass: "2xx" (default), "3xx", or one code such as "200". */
      status: z
        .string()
        .regex(/^[1-5](xx|\d\d)$/, 'a status class such as "2xx", or a status code such as "204"')
        .default('2xx'),
    })
    .refine((h) => h.interval > 0 && h.timeout > 0, {
      path: ['interval'],
      message: 'interval and timeout are above 0',
    })
    .optional(),
});

const route = z.strictObject({
  /** Path prefix; the longest matching prefix wins (nginx `location /prefix`). */
  path: z.string().startsWith('/', 'a route path starts with "/"'),
  /** Name of an [upstreams.NAME] group of this site, or one upstream URL. */
  upstream: z.string().optional(),
  /** Serve files from this folder (nginx `root`); relative paths are relative to the config folder. */
  root: z.string().optional(),
  index: z.array(z.string()).default(['index.html']),
  /** Reply with this status and nothing else (nginx `return 403`, `deny all`); with `redirect`, the redirect's status. */
  status: z.number().int().min(200).max(599).optional(),
  /** nginx `return 301 URL`: a redirect to this URL ($scheme, $host, $request_uri, $uri), status 301 unless set. */
  redirect: z.string().min(1).optional(),
  /** nginx `proxy_pass http://b/prefix/` under `location /app/`: the route's path is replaced by this one upstream. */
  rewrite_prefix: z.string().startsWith('/', 'rewrite_prefix is a path starting with "/"').optional(),
  websocket: z.boolean().default(true),
  /** %2F and %5C in the path are refused unless the route's upstream takes them as data (they are forwarded encoded). */
  allow_encoded_slashes: z.boolean().default(false),
  /** ";" in the path is refused unless the route's upstream takes it as data (servlet containers read it as a parameter). */
  allow_path_parameters: z.boolean().default(false),
  ...proxyKnobs,
  ...accessKnobs,
});

const YEAR_MS = 365 * 86_400_000;

/**
 * HTTP Strict Transport Security (RFC 6797): `hsts = true` is one year; a table sets max_age, include_subdomains and
 * preload. Preload lists take a site only with includeSubDomains and at least a year (https://hstspreload.org/).
 */
const hsts = z.preprocess(
  (value) => (value === true ? {} : value === false ? undefined : value),
  z
    .strictObject(
      {
        max_age: duration.default(YEAR_MS),
        include_subdomains: z.boolean().default(false),
        preload: z.boolean().default(false),
      },
      { error: 'hsts is true, false or a table: { max_age = "365d", include_subdomains = true, preload = true }' },
    )
    .refine((h) => !h.preload || h.include_subdomains, {
      path: ['preload'],
      message: 'preload needs include_subdomains = true (hstspreload.org)',
    })
    .refine((h) => !h.preload || h.max_age >= YEAR_MS, {
      path: ['preload'],
      message: 'preload needs a max_age of at least 365d (hstspreload.org)',
    })
    .optional(),
);

export const siteSchema = z.strictObject({
  server_names: z.array(serverName).min(1),
  /** Either cert + key files (nginx ssl_certificate / ssl_certificate_key) or acme = true (obtained and renewed by Gatehouse). */
  tls: z.strictObject({
    cert: z.string().optional(),
    key: z.string().optional(),
    acme: z.boolean().default(false),
  }),
  upstreams: z
    .record(z.string().regex(/^[\w.-]+$/, 'upstream names are letters, digits, "_", "-" and "."'), upstreamGroup)
    .default({}),
  routes: z.array(route).min(1),
  /** Regular expressions on the normalized path answered with 403 before routing (nginx `location ~ /\.ht { deny all; }`). */
  deny_paths: z
    .array(
      z.string().refine((source) => {
        try {
          new RegExp(source);
          return true;
        } catch {
          return false;
        }
      }, 'not a valid regular expression'),
    )
    .default([]),
  /** OpenID Connect login in front of the whole site (oauth2-proxy's options); a site without [auth] is public. */
  auth: authSchema.optional(),
  /** Strict-Transport-Security on every HTTPS response of the site; off unless set. */
  hsts,
  ...accessKnobs,
});

export type GlobalConfigInput = z.input<typeof globalSchema>;
export type GlobalSettings = z.output<typeof globalSchema>;
export type SiteSettings = z.output<typeof siteSchema>;
export type RouteSettings = SiteSettings['routes'][number];

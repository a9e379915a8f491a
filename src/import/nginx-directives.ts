// What each nginx directive becomes: the tables `gatehouse import` consults (and README lists): translated, needs
// nothing (Gatehouse does it by itself, the reason goes into the output as a comment), or refused with the reason.

/** Route knobs: nginx directive → Gatehouse key, for http ([proxy] defaults), server and location levels. */
export const ROUTE_KNOBS: Record<string, { key: string; kind: 'duration' | 'size' | 'onoff' }> = {
  client_max_body_size: { key: 'max_body_size', kind: 'size' },
  proxy_connect_timeout: { key: 'connect_timeout', kind: 'duration' },
  proxy_send_timeout: { key: 'send_timeout', kind: 'duration' },
  proxy_read_timeout: { key: 'read_timeout', kind: 'duration' },
  send_timeout: { key: 'send_timeout', kind: 'duration' },
  client_body_timeout: { key: 'body_timeout', kind: 'duration' },
  proxy_request_buffering: { key: 'request_buffering', kind: 'onoff' },
};

/** Directives with a Gatehouse setting (what translate.ts does with each). */
export const TRANSLATED: Record<string, string> = {
  health_check:
    '(nginx Plus) the upstream group’s `health_check = { path, interval, healthy, unhealthy }` from `uri`, `interval`, `passes`, `fails`',
  server: 'a site file `sites/<first name>.toml`; a port-80 server that only redirects to HTTPS → `[http] listen`',
  listen:
    '`[https] listen` (with `ssl`) or `[http] listen` (redirect servers); `default_server` → `[https] default_site`; `proxy_protocol` → `[https] proxy_protocol = true`; `http2` implied; `quic` refused',
  server_name:
    '`server_names` (`.example.com` → the name and `*.example.com`; regular expressions refused; `_` = no site)',
  ssl_certificate: '`[tls] cert` (certbot’s `/etc/letsencrypt/live/…` → `acme = true`)',
  ssl_certificate_key: '`[tls] key` (certbot’s → `acme = true`)',
  upstream:
    '`[upstreams.NAME]` in each site that uses it: `server` → `servers`, `fail_timeout`, `keepalive`; `max_fails` implied; `weight`≠1, `backup`, `least_conn`, `hash` refused',
  location:
    '`[[routes]]` (prefix and `^~`); `=` only where the prefix route around it does the same; `~`/`~*` only as `deny_paths` (or a literal `^/prefix`); `/oauth2/…` and the `auth_request` target → `[auth]`; a nested location is a route of its own with the settings of the one around it',
  proxy_pass: '`upstream` (a group name or URL); a path (`http://b/prefix/`) → `rewrite_prefix`; variables refused',
  root: '`root` of a route without `proxy_pass`',
  return:
    '`status` (a code), `redirect` + `status` (301/302/307/308 URL); `return 301 https://$host$request_uri` on port 80 → `[http] listen`',
  client_max_body_size: '`max_body_size` (`0` → `"1024g"`)',
  proxy_connect_timeout: '`connect_timeout`',
  proxy_send_timeout: '`send_timeout`',
  proxy_read_timeout: '`read_timeout`',
  send_timeout: '`send_timeout`',
  client_body_timeout: '`body_timeout`',
  proxy_request_buffering: '`request_buffering`',
  proxy_set_header:
    'what Gatehouse sets anyway (Host, X-Real-IP, X-Forwarded-*, Upgrade/Connection) needs nothing; identity headers from `auth_request_set` → `[auth]`; the rest → `request_headers`',
  add_header: '`Strict-Transport-Security` → `hsts`; the rest → `response_headers` (site or route)',
  allow: '`ip_rules` (site or route); a location with only `deny all` → `deny_paths`',
  deny: '`ip_rules`, or `deny_paths` for a location that only denies',
  limit_req: '`rate_limit = { rate, burst }` from its `limit_req_zone` (per client address)',
  limit_req_zone: 'the `rate` of `rate_limit`',
  auth_request:
    '`[auth]` from the oauth2-proxy .cfg it points to; `auth_request off` (or none) in a protected site → `skip_auth_routes`',
  error_page:
    '`401 = /oauth2/sign_in` (or `/oauth2/start`, or a named location redirecting there): the login; no 401 page or `=401` → `api_routes`; other codes refused (Gatehouse’s own pages)',
  map: '`map $http_upgrade $connection_upgrade` needs nothing (WebSocket is on by default); other maps refused',
  worker_processes: '`workers`',
  access_log: '`[log] access_log` (`off` → false)',
  set_real_ip_from: '`[proxy] trusted_proxies`',
  http: 'its proxy settings → `[proxy]` defaults in gatehouse.toml',
  events: 'needs nothing (Node’s event loop)',
};

/** Directives that need no setting: Gatehouse does this by itself (the reason goes into the output as a comment). */
export const IMPLIED: Record<string, string> = {
  user: 'the service manager picks the user (systemd DynamicUser)',
  pid: 'no pid file; the service manager tracks the process',
  worker_rlimit_nofile: 'set LimitNOFILE= in the service unit',
  worker_connections: 'no per-worker connection cap',
  multi_accept: 'Node accepts connections as they come',
  use: 'Node picks the event mechanism (epoll)',
  error_log: 'logs go to standard output as JSON lines ([log])',
  sendfile: 'static files are streamed by Node',
  tcp_nopush: 'socket tuning is Node’s',
  tcp_nodelay: 'socket tuning is Node’s',
  keepalive_timeout: 'client keep-alive is handled by Node’s HTTP servers',
  keepalive_requests: 'client keep-alive is handled by Node’s HTTP servers',
  types_hash_max_size: 'no hash tables to size',
  server_names_hash_bucket_size: 'no hash tables to size',
  server_names_hash_max_size: 'no hash tables to size',
  variables_hash_max_size: 'no hash tables to size',
  default_type: 'static files get their type from their name (mime-db)',
  types: 'static files get their type from their name (mime-db)',
  server_tokens: 'Gatehouse sends no version',
  ssl_protocols: "built in: TLS 1.2 and 1.3 only (Mozilla's intermediate profile)",
  ssl_ciphers: "built in: Mozilla's intermediate profile",
  ssl_prefer_server_ciphers: "built in: Mozilla's intermediate profile",
  ssl_ecdh_curve: "built in: Mozilla's intermediate profile",
  ssl_dhparam: 'no DHE suites: ECDHE only',
  ssl_session_cache: 'no session resumption (every handshake is full; see README "TLS")',
  ssl_session_timeout: 'no session resumption',
  ssl_session_tickets: 'no session resumption',
  ssl_stapling: 'no OCSP stapling (Let’s Encrypt ended OCSP)',
  ssl_stapling_verify: 'no OCSP stapling',
  ssl_trusted_certificate: 'no OCSP stapling',
  ssl_buffer_size: 'TLS record sizes are Node’s',
  resolver: 'upstream names are resolved with the system resolver',
  resolver_timeout: 'upstream names are resolved with the system resolver',
  http2: 'HTTP/2 is offered on every HTTPS listener (ALPN)',
  proxy_http_version: 'upstream connections are HTTP/1.1 keep-alive',
  client_body_buffer_size: 'no buffer to size: request bodies stream (or request_buffering reads them whole)',
  proxy_buffering: 'responses stream with backpressure',
  proxy_buffers: 'responses stream with backpressure',
  proxy_buffer_size: 'responses stream with backpressure',
  proxy_busy_buffers_size: 'responses stream with backpressure',
  large_client_header_buffers: 'header limits are Node’s (16 KB)',
  client_header_buffer_size: 'header limits are Node’s (16 KB)',
  proxy_ignore_client_abort: 'a client that leaves ends the upstream exchange (as nginx’s default)',
  log_not_found: 'missing files are answered 404 without an error log line',
  charset: 'the upstream or the file type sets the charset',
  absolute_redirect: 'Gatehouse’s own redirects are absolute https URLs',
  server_name_in_redirect: 'Gatehouse’s own redirects use the request host',
  gzip_vary: 'no compression by Gatehouse (see gzip)',
  real_ip_header: 'forwarded addresses are taken from X-Forwarded-For of [proxy] trusted_proxies',
  real_ip_recursive: 'forwarded addresses are taken from X-Forwarded-For of [proxy] trusted_proxies',
  load_module: 'no dynamic modules',
  include: 'resolved: its directives are translated where they stand',
  log_format: 'the access log is one JSON line per request',
  index: 'used by routes that serve files',
  proxy_ssl_server_name: 'SNI is always sent to https upstreams',
};

/** Directives refused wherever they stand, with the reason. Anything neither translated, implied nor here is refused as unknown. */
export const REFUSED: Record<string, string> = {
  gzip: 'Gatehouse does not compress responses; an upstream’s compressed answer passes through',
  gzip_types: 'Gatehouse does not compress responses',
  gzip_comp_level: 'Gatehouse does not compress responses',
  gzip_proxied: 'Gatehouse does not compress responses',
  gzip_min_length: 'Gatehouse does not compress responses',
  brotli: 'Gatehouse does not compress responses',
  expires: 'no cache headers are added; let the upstream send them',
  proxy_cache: 'Gatehouse does not cache responses',
  proxy_cache_path: 'Gatehouse does not cache responses',
  proxy_cache_valid: 'Gatehouse does not cache responses',
  fastcgi_pass: 'FastCGI is not proxied: run the application behind an HTTP server (php-fpm → e.g. FrankenPHP)',
  uwsgi_pass: 'uwsgi is not proxied: serve the application over HTTP',
  grpc_pass: 'gRPC upstreams are not supported',
  rewrite: 'no URL rewriting: use a route per prefix (rewrite_prefix for proxy_pass with a path) or a redirect',
  try_files: 'no try_files: a static route serves files and index; single-page-app fallbacks are not supported',
  alias: 'root appends the whole path, as nginx root does: point root at a folder where the path exists',
  auth_basic: 'no HTTP Basic authentication: use [auth]',
  auth_basic_user_file: 'no HTTP Basic authentication: use [auth]',
  limit_conn: 'no per-client connection limit (rate_limit limits requests)',
  limit_conn_zone: 'no per-client connection limit',
  limit_rate: 'no bandwidth limit',
  sub_filter: 'responses are never rewritten',
  ssi: 'responses are never rewritten',
  autoindex: 'no folder listings',
  stream: 'no TCP/UDP (stream) proxying',
  mail: 'no mail proxying',
  geo: 'no variables from client addresses: use ip_rules',
  split_clients: 'no A/B splitting',
  if: 'no conditions: routes match on the path only',
  set: 'no variables',
  proxy_cookie_path: 'upstream cookies are passed as they are',
  proxy_cookie_domain: 'upstream cookies are passed as they are',
  proxy_hide_header: 'upstream response headers are passed as they are (hop-by-hop ones removed)',
  proxy_pass_header: 'upstream response headers are passed as they are',
  proxy_next_upstream: 'a refused connection moves idempotent requests to the next server; nothing else is retried',
  proxy_ssl_verify: 'https upstreams are verified against the system roots',
  proxy_ssl_trusted_certificate: 'https upstreams are verified against the system roots',
  proxy_ssl_certificate: 'no client certificates to upstreams',
  ssl_client_certificate: 'no client certificate authentication',
  ssl_verify_client: 'no client certificate authentication',
  internal: 'no internal-only locations',
  satisfy: 'every rule must admit the request',
  sendfile_max_chunk: 'static files are streamed by Node',
  open_file_cache: 'no file cache',
  auth_request_set: 'variables from auth_request answers are not supported',
};

/** Header values the upstream gets from Gatehouse anyway. */
export function impliedHeader(name: string, value: string, serverNames: string[]): string | undefined {
  const v = value.trim();
  switch (name.toLowerCase()) {
    case 'host':
      return ['$host', '$http_host'].includes(v) || (v === '$server_name' && serverNames.length === 1)
        ? 'Host is passed through unchanged'
        : undefined;
    case 'x-real-ip':
      return v === '$remote_addr' ? 'X-Real-IP is always the client address' : undefined;
    case 'x-forwarded-for':
      return ['$proxy_add_x_forwarded_for', '$remote_addr'].includes(v)
        ? 'X-Forwarded-For is always set (appended to for [proxy] trusted_proxies)'
        : undefined;
    case 'x-forwarded-proto':
      return ['$scheme', 'https'].includes(v) ? 'X-Forwarded-Proto is always set' : undefined;
    case 'x-forwarded-host':
      return ['$host', '$http_host'].includes(v) ||
        (serverNames.length === 1 && [serverNames[0], '$server_name'].includes(v))
        ? 'X-Forwarded-Host is always the request host'
        : undefined;
    case 'upgrade':
      return v === '$http_upgrade' ? 'WebSocket upgrades are forwarded (websocket = true by default)' : undefined;
    case 'connection':
      return ['$connection_upgrade', '$http_connection', 'upgrade', 'Upgrade', '', 'close'].includes(v)
        ? 'Connection is hop-by-hop: Gatehouse sets it itself; WebSocket upgrades are forwarded'
        : undefined;
  }
  return undefined;
}

/** Variables the request_headers knob understands. */
export const HEADER_VARIABLES =
  /^(remote_addr|host|scheme|request_uri|proxy_add_x_forwarded_for|server_name|http_[a-z0-9_]+)$/;

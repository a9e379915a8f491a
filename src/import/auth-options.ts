// oauth2-proxy options → a site's [auth] table. Options the [auth] schema knows are copied under their own name;
// the others are translated where Gatehouse has the thing elsewhere, accepted where their value is what Gatehouse
// always does, and refused with the reason the configuration loader gives for them.
import { authSchema, UNSUPPORTED_AUTH_OPTIONS } from '../config/auth-schema.ts';
import { LIST_OPTIONS, type OAuth2ProxyConfig, type ProxyOption } from './oauth2-proxy.ts';
import type { Source, TomlValue } from './toml-writer.ts';

export interface AuthLine {
  key: string;
  value: TomlValue;
  from: Source;
  note?: string;
}

export interface Finding {
  from: Source;
  name: string;
  why: string;
}

export interface AuthTranslation {
  lines: AuthLine[];
  /** Secret values moved out of the TOML into files (written 0600 beside it): key → value. */
  secrets: Map<string, { value: string; from: Source }>;
  /** Settings for gatehouse.toml: [metrics] listen, [log] access_log. */
  global: { key: string; value: TomlValue; from: Source }[];
  /** gatehouse.toml [store] from the Redis session options (empty unless session_store_type = "redis"). */
  store: { key: string; value: TomlValue; from: Source[]; note?: string }[];
  /** The Redis password, moved out of the TOML into a file like the client secret. */
  storePassword?: { value: string; from: Source };
  implied: Finding[];
  refused: Finding[];
}

const SCHEMA_KEYS = new Set(Object.keys(authSchema.shape));

/** Options whose value is what Gatehouse always does: nothing to carry over. */
export const IMPLIED_VALUES: Record<string, { value: unknown; why: string }> = {
  code_challenge_method: { value: 'S256', why: 'PKCE S256 is always used' },
  insecure_oidc_skip_nonce: { value: false, why: 'the nonce is always checked' },
  insecure_oidc_skip_issuer_verification: { value: false, why: 'the issuer is always verified' },
  insecure_oidc_allow_unverified_email: { value: false, why: 'unverified emails are never accepted' },
  ssl_insecure_skip_verify: { value: false, why: 'TLS to the identity provider is always verified' },
  skip_oidc_discovery: { value: false, why: 'discovery is always used' },
  skip_provider_button: { value: true, why: 'anonymous navigations go straight to the provider' },
  skip_auth_strip_headers: { value: true, why: 'identity headers sent by clients are always removed' },
  pass_host_header: { value: true, why: 'the Host header is always passed' },
  pass_basic_auth: { value: false, why: 'off in Gatehouse too' },
  set_authorization_header: { value: false, why: 'off in Gatehouse too' },
  skip_auth_preflight: { value: false, why: 'off in Gatehouse too' },
  session_cookie_minimal: { value: true, why: 'the session cookie never holds tokens' },
  oidc_email_claim: { value: 'email', why: 'the email claim is read as "email"' },
  oidc_groups_claim: { value: 'groups', why: 'groups come from the "groups" claim' },
  user_id_claim: { value: 'email', why: 'the user is the email when there is one' },
  cookie_csrf_per_request: { value: true, why: 'login state is always kept per state value' },
  redis_use_cluster: { value: false, why: 'off in Gatehouse too' },
  redis_insecure_skip_tls_verify: { value: false, why: 'TLS to Redis is always verified' },
  redis_connection_idle_timeout: { value: 0, why: 'no idle timeout in Gatehouse either' },
};

/** Options translated to something else than the [auth] key of the same name (README lists them). */
export const TRANSLATED_OPTIONS: Record<string, string> = {
  provider:
    '`oidc`, `azure` (→ `entra-id`), `entra-id`, `keycloak-oidc` (→ `oidc`); other providers refused (not OpenID Connect)',
  client_secret: 'written to `secrets/<site>.client_secret` (0600), `client_secret = "${file:…}"`',
  client_secret_file: '`client_secret = "${file:PATH}"`',
  cookie_secret: 'written to `secrets/<site>.cookie_secret` (0600), `cookie_secret = "${file:…}"`',
  cookie_secret_file: '`cookie_secret = "${file:PATH}"`',
  metrics_address: 'gatehouse.toml `[metrics] listen`',
  request_logging: 'gatehouse.toml `[log] access_log`',
  upstreams:
    '`static://202` needs nothing (the auth_request answer); real upstreams refused: they are nginx’s `proxy_pass`',
  skip_auth_regex: '`skip_auth_routes`',
  email_domain: '`email_domains`',
  entra_id_allowed_tenants: '`allowed_tenants`',
  cookie_domain: '`cookie_domain` (one per site)',
  cookie_domains: '`cookie_domain` (the first; more are refused)',
  trusted_ips: '`trusted_ips`',
  session_store_type:
    '`"redis"` → gatehouse.toml `[store] backend = "redis"`; `"cookie"` needs nothing (sessions are server-side, gatehouse.toml `[session]`)',
  redis_connection_url:
    'gatehouse.toml `[store] url` (a password in it goes to `secrets/store.password`); with `session_store_type = "redis"`',
  redis_password: 'written to `secrets/store.password` (0600), `[store] password = "${file:…}"`',
  redis_username: 'the user of `[store] url` (`redis://USER@host:6379`); refused with Sentinel',
  redis_ca_path: 'gatehouse.toml `[store] ca`',
  redis_use_sentinel: '`true`: `[store] sentinels` + `master_name` instead of `url`',
  redis_sentinel_connection_urls: 'gatehouse.toml `[store] sentinels` (`"host:port"`)',
  redis_sentinel_master_name: 'gatehouse.toml `[store] master_name`',
};

/** The Redis session options translateRedis() reads; the others (cluster, TLS skip, …) are implied or refused. */
const REDIS_OPTIONS = new Set([
  'session_store_type',
  'redis_connection_url',
  'redis_password',
  'redis_username',
  'redis_ca_path',
  'redis_use_sentinel',
  'redis_sentinel_connection_urls',
  'redis_sentinel_master_name',
]);

/** Options that do nothing once Gatehouse stands where nginx and oauth2-proxy stood. */
export const ABSORBED: Record<string, string> = {
  http_address: 'nginx sent auth_request here; Gatehouse answers /oauth2/* itself',
  reverse_proxy:
    'oauth2-proxy sat behind nginx; Gatehouse is the edge ([proxy] trusted_proxies for a balancer in front)',
  cookie_secure: 'Gatehouse cookies are always Secure',
  cookie_httponly: 'Gatehouse cookies are always HttpOnly',
  cookie_http_only: 'Gatehouse cookies are always HttpOnly',
};

function asList(value: unknown): unknown[] {
  return Array.isArray(value) ? value : [value];
}

function isTomlValue(value: unknown): value is TomlValue {
  if (['string', 'number', 'boolean'].includes(typeof value)) return true;
  if (Array.isArray(value)) return value.every(isTomlValue);
  return false;
}

export function translateAuthOptions(cfg: OAuth2ProxyConfig): AuthTranslation {
  const t: AuthTranslation = { lines: [], secrets: new Map(), global: [], store: [], implied: [], refused: [] };
  const add = (key: string, value: TomlValue, o: ProxyOption, note?: string) =>
    t.lines.push({ key, value, from: o.from, note });
  const refuse = (o: ProxyOption, why: string) => t.refused.push({ from: o.from, name: o.key, why });
  const imply = (o: ProxyOption, why: string) => t.implied.push({ from: o.from, name: o.key, why });

  if (!cfg.options.has('provider'))
    t.refused.push({
      from: { file: cfg.file, line: 1 },
      name: 'provider',
      why: 'not set: oauth2-proxy then uses Google; set provider = "oidc" with oidc_issuer_url',
    });

  translateRedis(cfg, t);
  for (const o of cfg.options.values()) {
    const { key, value } = o;
    if (REDIS_OPTIONS.has(key)) continue;
    switch (key) {
      case 'provider': {
        const p = String(value);
        if (['oidc', 'azure', 'entra-id'].includes(p)) add('provider', p === 'azure' ? 'entra-id' : p, o);
        else if (p === 'keycloak-oidc') add('provider', 'oidc', o, 'keycloak-oidc is OpenID Connect');
        else refuse(o, `Gatehouse speaks OpenID Connect ("oidc", "entra-id"); "${p}" is not supported`);
        continue;
      }
      case 'client_secret':
      case 'cookie_secret':
        if (typeof value !== 'string') refuse(o, 'not a string');
        else t.secrets.set(key, { value, from: o.from });
        continue;
      case 'client_secret_file':
      case 'cookie_secret_file':
        add(key.replace(/_file$/, ''), `\${file:${String(value)}}`, o);
        continue;
      case 'metrics_address':
        t.global.push({ key: 'metrics.listen', value: String(value), from: o.from });
        continue;
      case 'request_logging':
        t.global.push({ key: 'log.access_log', value: value === true, from: o.from });
        continue;
      case 'upstreams':
        if (asList(value).every((u) => /^static:\/\/20[02]$/.test(String(u))))
          imply(o, 'the static answer nginx auth_request needed; Gatehouse checks sessions inline');
        else refuse(o, UNSUPPORTED_AUTH_OPTIONS.upstreams!);
        continue;
      case 'skip_auth_regex':
        add('skip_auth_routes', asList(value).map(String), o, 'skip_auth_regex is skip_auth_routes without a method');
        continue;
      case 'email_domain':
        add('email_domains', asList(value).map(String), o);
        continue;
      case 'entra_id_allowed_tenants':
        add('allowed_tenants', asList(value).map(String), o);
        continue;
      case 'cookie_domain':
      case 'cookie_domains': {
        const domains = asList(value).map(String);
        add('cookie_domain', domains[0]!, o, 'one login for the subdomains');
        if (domains.length > 1) refuse(o, `one cookie_domain per site: ${domains.slice(1).join(', ')} left out`);
        continue;
      }
      case 'trusted_ips':
        add('trusted_ips', asList(value).map(String), o, 'these addresses skip the login');
        continue;
    }
    if (ABSORBED[key]) {
      if ((key === 'cookie_secure' || key.startsWith('cookie_http')) && value !== true)
        refuse(o, `${ABSORBED[key]}; false has no equivalent`);
      else imply(o, ABSORBED[key]!);
      continue;
    }
    const implied = IMPLIED_VALUES[key];
    if (implied) {
      if (value === implied.value) imply(o, implied.why);
      else refuse(o, UNSUPPORTED_AUTH_OPTIONS[key] ?? implied.why);
      continue;
    }
    if (SCHEMA_KEYS.has(key)) {
      // oauth2-proxy reads a lone string where it takes a list (email_domains = "example.com").
      if (LIST_OPTIONS.has(key) && typeof value === 'string') add(key, [value], o);
      else if (isTomlValue(value)) add(key, value, o);
      else refuse(o, 'not a string, number, boolean or list');
      continue;
    }
    refuse(o, UNSUPPORTED_AUTH_OPTIONS[key] ?? 'not an oauth2-proxy option Gatehouse knows');
  }
  return t;
}

/** oauth2-proxy's Redis session store → gatehouse.toml [store] (https://oauth2-proxy.github.io/oauth2-proxy/configuration/session_storage#redis-storage).
 *  oauth2-proxy reads the redis_* options only with session_store_type = "redis"; Gatehouse's sessions are always
 *  server-side, so "cookie" needs nothing. */
function translateRedis(cfg: OAuth2ProxyConfig, t: AuthTranslation): void {
  const option = (key: string) => cfg.options.get(key);
  const refuse = (o: ProxyOption, why: string) => t.refused.push({ from: o.from, name: o.key, why });
  const imply = (o: ProxyOption, why: string) => t.implied.push({ from: o.from, name: o.key, why });
  const type = option('session_store_type');
  const redisOptions = [...cfg.options.values()].filter((o) => REDIS_OPTIONS.has(o.key) && o !== type);
  if (type?.value !== 'redis') {
    if (type && type.value !== 'cookie')
      refuse(type, `"${String(type.value)}" is not a session store: "redis" or "cookie"`);
    else if (type) imply(type, 'sessions are server-side (gatehouse.toml [session]); nothing to set');
    for (const o of redisOptions) imply(o, 'oauth2-proxy reads it only with session_store_type = "redis"');
    return;
  }
  const store = (key: string, value: TomlValue, from: ProxyOption[], note?: string) =>
    t.store.push({ key, value, from: from.map((o) => o.from), note });
  store('backend', 'redis', [type], 'sessions shared by every instance, as oauth2-proxy’s were');
  const sentinel = option('redis_use_sentinel');
  const useSentinel = sentinel?.value === true;
  const url = option('redis_connection_url');
  const username = option('redis_username');
  const password = option('redis_password');
  let urlPassword: string | undefined;
  if (useSentinel) {
    if (url) imply(url, 'oauth2-proxy ignores it with redis_use_sentinel = true');
    const list = option('redis_sentinel_connection_urls');
    const sentinels = asList(list?.value ?? []).map((u) => hostPort(String(u)));
    const master = option('redis_sentinel_master_name');
    if (!list || sentinels.length === 0 || sentinels.includes(undefined))
      refuse(list ?? sentinel, 'redis_sentinel_connection_urls must list the Sentinels as redis://host:port');
    else store('sentinels', sentinels as string[], [sentinel, list]);
    if (typeof master?.value !== 'string' || master.value === '')
      refuse(master ?? sentinel, 'redis_use_sentinel needs redis_sentinel_master_name');
    else store('master_name', master.value, [master]);
    if (username) refuse(username, 'with Sentinel, gatehouse.toml [store] has no Redis user (ACL users go in url)');
  } else {
    for (const key of ['redis_sentinel_connection_urls', 'redis_sentinel_master_name', 'redis_use_sentinel'] as const) {
      const o = option(key);
      if (o)
        imply(
          o,
          key === 'redis_use_sentinel'
            ? 'off in Gatehouse too'
            : 'oauth2-proxy reads it only with redis_use_sentinel = true',
        );
    }
    let parsed: URL | undefined;
    try {
      parsed = url && typeof url.value === 'string' ? new URL(url.value) : undefined;
    } catch {
      parsed = undefined;
    }
    if (!url) refuse(type, 'session_store_type = "redis" needs redis_connection_url (or redis_use_sentinel)');
    else if (!parsed || !['redis:', 'rediss:'].includes(parsed.protocol) || parsed.hostname === '')
      refuse(url, 'Gatehouse connects to redis://host:port or rediss://host:port (no unix sockets)');
    else {
      // A password in the URL would sit in gatehouse.toml: it goes to a 0600 file like redis_password.
      if (parsed.password) urlPassword = decodeURIComponent(parsed.password);
      parsed.password = '';
      if (username && typeof username.value === 'string') parsed.username = encodeURIComponent(username.value);
      store(
        'url',
        parsed.toString(),
        username ? [url, username] : [url],
        username ? 'redis_username is its user' : undefined,
      );
    }
  }
  const ca = option('redis_ca_path');
  const plain = !useSentinel && t.store.some((e) => e.key === 'url' && String(e.value).startsWith('redis:'));
  if (ca && plain) imply(ca, 'the url is redis:// (no TLS): there is nothing for a CA to verify');
  else if (ca) store('ca', String(ca.value), [ca], 'extra CA for TLS to Redis');
  if (password && typeof password.value === 'string') t.storePassword = { value: password.value, from: password.from };
  else if (password) refuse(password, 'not a string');
  else if (urlPassword !== undefined && url) t.storePassword = { value: urlPassword, from: url.from };
}

/** "redis://host:26379" (oauth2-proxy's Sentinel address form) or "host:26379" → "host:26379". */
function hostPort(text: string): string | undefined {
  try {
    const url = new URL(text.includes('://') ? text : `redis://${text}`);
    return url.hostname && url.port ? `${url.hostname}:${url.port}` : undefined;
  } catch {
    return undefined;
  }
}

/** The address an oauth2-proxy configuration listens on (its default is 127.0.0.1:4180). */
export function proxyPort(cfg: OAuth2ProxyConfig): string {
  const address = String(cfg.options.get('http_address')?.value ?? '127.0.0.1:4180').replace(/^https?:\/\//, '');
  return address.slice(address.lastIndexOf(':') + 1);
}

/** The host of redirect_url, to match the configuration to a server_name. */
export function redirectHost(cfg: OAuth2ProxyConfig): string | undefined {
  const url = cfg.options.get('redirect_url')?.value;
  try {
    return typeof url === 'string' ? new URL(url).hostname : undefined;
  } catch {
    return undefined;
  }
}

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
  session_store_type: { value: 'cookie', why: 'sessions are server-side (gatehouse.toml [session]); nothing to set' },
  cookie_csrf_per_request: { value: true, why: 'login state is always kept per state value' },
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
};

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
  const t: AuthTranslation = { lines: [], secrets: new Map(), global: [], implied: [], refused: [] };
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

  for (const o of cfg.options.values()) {
    const { key, value } = o;
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

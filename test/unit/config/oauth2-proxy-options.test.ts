// Every option of oauth2-proxy's configuration reference (toml names, general and per-provider pages:
// https://oauth2-proxy.github.io/oauth2-proxy/configuration/overview) is either an [auth] option of Gatehouse or
// refused with its reason; a pasted .cfg never meets a bare "unknown key".
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { authSchema, UNSUPPORTED_AUTH_OPTIONS } from '../../../src/config/auth-schema.ts';
import { loadConfig } from '../../../src/config/load.ts';
import { ConfigError } from '../../../src/config/problems.ts';
import { writeConfig } from '../../harness/gatehouse.ts';
import { createTestCa } from '../../harness/pki.ts';

const OAUTH2_PROXY_OPTIONS = {
  provider: [
    'acr_values',
    'allowed_groups',
    'allowed_roles',
    'approval_prompt',
    'backend_logout_url',
    'client_id',
    'client_secret',
    'client_secret_file',
    'code_challenge_method',
    'insecure_oidc_allow_unverified_email',
    'insecure_oidc_skip_issuer_verification',
    'insecure_oidc_skip_nonce',
    'jwt_key',
    'jwt_key_file',
    'login_url',
    'oidc_audience_claims',
    'oidc_email_claim',
    'oidc_extra_audiences',
    'oidc_groups_claim',
    'oidc_issuer_url',
    'oidc_jwks_url',
    'profile_url',
    'prompt',
    'provider',
    'provider_ca_files',
    'provider_display_name',
    'pubjwk_url',
    'redeem_url',
    'scope',
    'skip_claims_from_profile_url',
    'skip_oidc_discovery',
    'use_system_trust_store',
    'user_id_claim',
    'validate_url',
  ],
  cookie: [
    'cookie_csrf_expire',
    'cookie_csrf_per_request',
    'cookie_domains',
    'cookie_expire',
    'cookie_httponly',
    'cookie_name',
    'cookie_path',
    'cookie_refresh',
    'cookie_samesite',
    'cookie_secret',
    'cookie_secret_file',
    'cookie_secure',
  ],
  header: [
    'basic_auth_password',
    'set_xauthrequest',
    'set_authorization_header',
    'set_basic_auth',
    'skip_auth_strip_headers',
    'pass_access_token',
    'pass_authorization_header',
    'pass_basic_auth',
    'prefer_email_to_user',
    'pass_user_headers',
  ],
  logging: [
    'auth_logging',
    'auth_logging_format',
    'errors_to_info_log',
    'exclude_logging_paths',
    'logging_compress',
    'logging_filename',
    'logging_local_time',
    'logging_max_age',
    'logging_max_backups',
    'logging_max_size',
    'request_id_header',
    'request_logging',
    'request_logging_format',
    'silence_ping_logging',
    'standard_logging',
    'standard_logging_format',
  ],
  pages: [
    'banner',
    'custom_sign_in_logo',
    'custom_templates_dir',
    'display_htpasswd_form',
    'footer',
    'show_debug_on_error',
  ],
  probes: ['ping_path', 'ping_user_agent', 'ready_path', 'gcp_healthchecks'],
  proxy: [
    'allow_query_semicolons',
    'api_routes',
    'authenticated_emails_file',
    'email_domains',
    'encode_state',
    'extra_jwt_issuers',
    'force_https',
    'force_json_errors',
    'htpasswd_file',
    'htpasswd_user_groups',
    'proxy_prefix',
    'real_client_ip_header',
    'redirect_url',
    'relative_redirect_url',
    'reverse_proxy',
    'signature_key',
    'skip_auth_preflight',
    'skip_auth_regex',
    'skip_auth_routes',
    'skip_jwt_bearer_tokens',
    'skip_provider_button',
    'ssl_insecure_skip_verify',
    'trusted_ips',
    'whitelist_domains',
  ],
  server: [
    'http_address',
    'https_address',
    'metrics_address',
    'metrics_secure_address',
    'metrics_tls_cert_file',
    'metrics_tls_key_file',
    'tls_cert_file',
    'tls_key_file',
    'tls_cipher_suites',
    'tls_min_version',
  ],
  session: [
    'session_cookie_minimal',
    'session_store_type',
    'redis_cluster_connection_urls',
    'redis_connection_url',
    'redis_insecure_skip_tls_verify',
    'redis_password',
    'redis_sentinel_password',
    'redis_sentinel_master_name',
    'redis_sentinel_connection_urls',
    'redis_use_cluster',
    'redis_use_sentinel',
    'redis_connection_idle_timeout',
  ],
  upstream: [
    'flush_interval',
    'pass_host_header',
    'proxy_websockets',
    'ssl_upstream_insecure_skip_verify',
    'upstream_timeout',
    'upstreams',
  ],
  providerPages: [
    'azure_tenant',
    'entra_id_allowed_tenants',
    'entra_id_federated_token_auth',
    'github_org',
    'github_team',
    'github_repo',
    'github_token',
    'github_users',
    'gitlab_groups',
    'gitlab_projects',
    'google_admin_email',
    'google_group',
    'google_service_account_json',
    'google_use_application_default_credentials',
    'google_target_principal',
    'keycloak_groups',
    'bitbucket_team',
    'bitbucket_repository',
  ],
};
const ALL = Object.values(OAUTH2_PROXY_OPTIONS).flat();

test('every oauth2-proxy option is an [auth] option or refused with a reason, never both', () => {
  const known = new Set(Object.keys(authSchema.shape));
  const neither = ALL.filter((name) => !known.has(name) && !UNSUPPORTED_AUTH_OPTIONS[name]);
  assert.deepEqual(neither, [], 'options with neither support nor a reason');
  const both = ALL.filter((name) => known.has(name) && name in UNSUPPORTED_AUTH_OPTIONS);
  assert.deepEqual(both, []);
  for (const [name, why] of Object.entries(UNSUPPORTED_AUTH_OPTIONS))
    assert.ok(why.length >= 10 && why !== 'not supported', `${name}: "${why}" is not a reason`);
  // The rows of the issue this list answers: 169 options in oauth2-proxy's reference, give or take its versions.
  assert.ok(ALL.length >= 150, `${ALL.length} options listed`);
});

test('a pasted .cfg with every refused option: each one reported with its reason at its line, none as "unknown key"', () => {
  const ca = createTestCa();
  const leaf = ca.issue(['a.test']);
  const refused = ALL.filter((name) => name in UNSUPPORTED_AUTH_OPTIONS);
  const dir = writeConfig({
    sites: {
      a: `server_names = ["a.test"]
[tls]
cert = ${JSON.stringify(leaf.certFile)}
key = ${JSON.stringify(leaf.keyFile)}
[[routes]]
path = "/"
upstream = "http://127.0.0.1:1"
[auth]
oidc_issuer_url = "https://login.example.com"
client_id = "c"
client_secret = "s"
cookie_secret = "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY="
email_domains = ["*"]
${refused.map((name) => `${name} = "x"`).join('\n')}
`,
    },
  });
  let problems: ConfigError['problems'] = [];
  try {
    loadConfig(dir, {});
  } catch (error) {
    assert.ok(error instanceof ConfigError);
    problems = error.problems;
  }
  assert.equal(problems.length, refused.length);
  refused.forEach((name, i) => {
    const p = problems.find((x) => x.key === `auth.${name}`);
    assert.ok(p, name);
    assert.equal(p.line, 14 + i, name);
    assert.equal(p.message, `oauth2-proxy option not supported by Gatehouse: ${UNSUPPORTED_AUTH_OPTIONS[name]}`);
  });
});

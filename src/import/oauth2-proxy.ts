// oauth2-proxy configuration: its .cfg files are TOML (https://oauth2-proxy.github.io/oauth2-proxy/configuration/overview),
// read with the parser the site files use so every option keeps its line; OAUTH2_PROXY_<OPTION> environment variables
// override the file, as they do in oauth2-proxy (flags > environment > file).
import fs from 'node:fs';
import { parseTomlSource, TomlSyntaxError } from '../config/toml-source.ts';
import type { Source } from './toml-writer.ts';

export interface ProxyOption {
  key: string;
  value: unknown;
  from: Source;
}

export interface OAuth2ProxyConfig {
  file: string;
  options: Map<string, ProxyOption>;
}

export class ProxyConfigError extends Error {
  readonly file: string;
  readonly line: number;
  constructor(file: string, line: number, message: string) {
    super(`${file}:${line}: ${message}`);
    this.file = file;
    this.line = line;
  }
}

/** Options that take a list: in the environment they are comma-separated, as oauth2-proxy's flags. */
export const LIST_OPTIONS = new Set([
  'email_domains',
  'allowed_groups',
  'allowed_roles',
  'allowed_tenants',
  'entra_id_allowed_tenants',
  'skip_auth_routes',
  'skip_auth_regex',
  'api_routes',
  'whitelist_domains',
  'extra_jwt_issuers',
  'upstreams',
  'cookie_domains',
  'trusted_ips',
]);

export const ENV_PREFIX = 'OAUTH2_PROXY_';

export function readOAuth2ProxyConfig(file: string | undefined, env: NodeJS.ProcessEnv): OAuth2ProxyConfig {
  const options = new Map<string, ProxyOption>();
  const name = file ?? 'environment';
  if (file !== undefined) {
    let text: string;
    try {
      text = fs.readFileSync(file, 'utf8');
    } catch (error) {
      throw new ProxyConfigError(file, 1, `cannot read: ${(error as NodeJS.ErrnoException).code ?? String(error)}`);
    }
    let source;
    try {
      source = parseTomlSource(text);
    } catch (error) {
      if (error instanceof TomlSyntaxError)
        throw new ProxyConfigError(file, error.line, `TOML syntax: ${error.message}`);
      throw error;
    }
    for (const [key, value] of Object.entries(source.value))
      options.set(key, { key, value, from: { file, line: source.lineOf([key]) } });
  }
  for (const [variable, text] of Object.entries(env)) {
    if (!variable.startsWith(ENV_PREFIX) || text === undefined) continue;
    const key = variable.slice(ENV_PREFIX.length).toLowerCase();
    options.set(key, { key, value: envValue(key, text), from: { file: `$${variable}`, line: 0 } });
  }
  return { file: name, options };
}

function envValue(key: string, text: string): unknown {
  if (LIST_OPTIONS.has(key))
    return text
      .split(',')
      .map((s) => s.trim())
      .filter(Boolean);
  if (text === 'true' || text === 'false') return text === 'true';
  return text;
}

/** Whether the environment holds any OAUTH2_PROXY_* variable. */
export function hasProxyEnvironment(env: NodeJS.ProcessEnv): boolean {
  return Object.keys(env).some((k) => k.startsWith(ENV_PREFIX));
}

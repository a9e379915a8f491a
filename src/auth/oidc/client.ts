// One openid-client Configuration per site, from the issuer's discovery document. Discovery runs in the
// background with retries (an identity provider that is down at start must not stop Gatehouse from serving its
// public sites); /ready reports whether every site's discovery has loaded.
import * as client from 'openid-client';
import { isLoopback } from '../../config/auth-settings.ts';
import type { AuthSettings } from '../../config/model.ts';
import type { Logger } from '../../observability/logger.ts';

export type FetchLike = (url: string, init: RequestInit) => Promise<Response>;

const RETRY_MIN_MS = 500;
const RETRY_MAX_MS = 30_000;
const DISCOVERY_TIMEOUT_S = 10;
/** Every later request to the provider (code exchange, refresh, keys): openid-client's default. A refresh outlives the
 *  request that started it (site-auth.ts), so a slow provider's answer, and the refresh token it rotated, is kept. */
export const PROVIDER_TIMEOUT_S = 30;

export class OidcClient {
  readonly settings: AuthSettings;
  #config: client.Configuration | undefined;
  #pending: Promise<client.Configuration> | undefined;
  #timer: NodeJS.Timeout | undefined;
  #stopped = false;
  readonly #log: Logger;
  readonly #fetch: FetchLike | undefined;

  constructor(settings: AuthSettings, log: Logger, fetchImpl?: FetchLike) {
    this.settings = settings;
    this.#log = log;
    this.#fetch = fetchImpl;
  }

  get ready(): boolean {
    return this.#config !== undefined;
  }

  /** The fetch used for every request to the provider (and Microsoft Graph): injectable for tests. */
  get fetch(): FetchLike {
    return this.#fetch ?? ((url, init) => fetch(url, init));
  }

  /** Starts discovery in the background, retrying with backoff until it succeeds. */
  start(): void {
    const attempt = (delay: number) => {
      if (this.#stopped || this.#config) return;
      this.configuration().catch((error: Error) => {
        this.#log.warn(
          {
            issuer: this.settings.issuer,
            err: { message: error.message, code: (error as NodeJS.ErrnoException).code },
            retry_ms: delay,
          },
          'OpenID discovery failed; retrying',
        );
        this.#timer = setTimeout(() => attempt(Math.min(delay * 2, RETRY_MAX_MS)), delay);
        this.#timer.unref();
      });
    };
    attempt(RETRY_MIN_MS);
  }

  stop(): void {
    this.#stopped = true;
    clearTimeout(this.#timer);
  }

  /** The loaded configuration, discovering it now (once, shared by concurrent callers) when it is not loaded yet. */
  configuration(): Promise<client.Configuration> {
    if (this.#config) return Promise.resolve(this.#config);
    this.#pending ??= this.#discover()
      .then((config) => {
        this.#config = config;
        this.#log.info(
          { issuer: this.settings.issuer, provider: this.settings.provider },
          'OpenID provider discovered',
        );
        return config;
      })
      .finally(() => {
        this.#pending = undefined;
      });
    return this.#pending;
  }

  async #discover(): Promise<client.Configuration> {
    const { issuer, clientId, clientSecret } = this.settings;
    const url = new URL(issuer);
    const options: client.DiscoveryRequestOptions = { timeout: DISCOVERY_TIMEOUT_S };
    // http:// only for a loopback issuer (the demo's embedded provider, tests); config validation refuses others.
    if (url.protocol === 'http:' && isLoopback(url.hostname)) options.execute = [client.allowInsecureRequests];
    if (this.#fetch) options[client.customFetch] = this.#fetch as client.CustomFetch;
    // The issuer URL, not the .well-known URL: with the latter openid-client skips the issuer check (panva/openid-client#893).
    const config = await client.discovery(
      url,
      clientId,
      { client_secret: clientSecret },
      client.ClientSecretBasic(clientSecret),
      options,
    );
    config.timeout = PROVIDER_TIMEOUT_S;
    return config;
  }
}

/** Error fields worth logging from a failed token or discovery request (Entra adds error_codes, trace_id, correlation_id). */
export function providerErrorFields(error: unknown): Record<string, unknown> {
  const e = error as {
    code?: string;
    error?: string;
    status?: number;
    message?: string;
    cause?: Record<string, unknown>;
  };
  const body = e.cause && typeof e.cause === 'object' && !(e.cause instanceof Error) ? e.cause : {};
  return {
    code: e.code,
    error: e.error,
    status: e.status,
    message: e.message,
    error_codes: body.error_codes,
    trace_id: body.trace_id,
    correlation_id: body.correlation_id,
  };
}

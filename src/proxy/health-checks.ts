// Active health checks of one upstream group (nginx Plus `health_check`, Envoy `health_checks`): every `interval`,
// each server is asked for `path` with its own connection (never one of the requests' keep-alive slots); after
// `unhealthy` failed checks in a row it is taken out of the rotation, after `healthy` passed ones it is back. This
// sits beside the passive check (fail_timeout): a server refusing a request's connection is still skipped at once.
// Servers start healthy, so a restart does not answer 502 before the first round. Every worker process runs its own
// checks (N workers ask each server N times per interval), like nginx Plus's workers share one zone but unlike Envoy.
import http from 'node:http';
import https from 'node:https';
import type { HealthCheck } from '../config/model.ts';
import type { Logger } from '../observability/logger.ts';
import type { UpstreamGroupPool, UpstreamServer } from './upstream-pools.ts';

interface ServerHealth {
  server: UpstreamServer;
  healthy: boolean;
  passed: number;
  failed: number;
  probing: boolean;
}

export class GroupHealth {
  readonly #group: UpstreamGroupPool;
  readonly #check: HealthCheck;
  readonly #log: Logger;
  readonly #servers: ServerHealth[];
  #timer: NodeJS.Timeout | undefined;

  constructor(group: UpstreamGroupPool, check: HealthCheck, log: Logger) {
    this.#group = group;
    this.#check = check;
    this.#log = log;
    this.#servers = group.servers.map((server) => ({ server, healthy: true, passed: 0, failed: 0, probing: false }));
  }

  start(): void {
    if (this.#timer) return;
    this.#round();
    this.#timer = setInterval(() => this.#round(), this.#check.intervalMs);
    this.#timer.unref();
  }

  stop(): void {
    clearInterval(this.#timer);
    this.#timer = undefined;
  }

  /** Every server failed its checks: the group answers 502 at once, without trying to connect. */
  allDown(): boolean {
    return this.#servers.every((s) => !s.healthy);
  }

  /** origin → healthy, for /metrics and tests. */
  states(): Record<string, boolean> {
    return Object.fromEntries(this.#servers.map((s) => [s.server.origin, s.healthy]));
  }

  #round(): void {
    for (const state of this.#servers) {
      if (state.probing) continue;
      state.probing = true;
      void probe(state.server.origin, this.#check).then((error) => {
        state.probing = false;
        if (this.#timer) this.#record(state, error);
      });
    }
  }

  #record(state: ServerHealth, error: string | undefined): void {
    if (error === undefined) {
      state.failed = 0;
      state.passed++;
      if (!state.healthy && state.passed >= this.#check.healthy) {
        state.healthy = true;
        this.#group.markUp(state.server);
        this.#log.info({ group: this.#group.name, upstream: state.server.origin }, 'upstream healthy');
      }
      return;
    }
    state.passed = 0;
    state.failed++;
    if (state.healthy && state.failed >= this.#check.unhealthy) {
      state.healthy = false;
      this.#log.warn({ group: this.#group.name, upstream: state.server.origin, cause: error }, 'upstream unhealthy');
    }
    // Down until a check passes again (a request's success would mark it up passively; the next failure undoes that).
    if (!state.healthy) state.server.downUntil = Number.POSITIVE_INFINITY;
  }
}

/** One check: undefined when the server answered a passing status in time, else why not. */
function probe(origin: string, check: HealthCheck): Promise<string | undefined> {
  return new Promise((resolve) => {
    const url = new URL(check.path, origin);
    const request = (url.protocol === 'https:' ? https : http).request(url, {
      method: 'GET',
      agent: false,
      headers: { 'user-agent': 'Gatehouse-HealthCheck', connection: 'close' },
      signal: AbortSignal.timeout(check.timeoutMs),
    });
    request.on('response', (res) => {
      res.on('error', () => {});
      res.resume();
      const status = res.statusCode ?? 0;
      const passed = status >= check.status.min && status <= check.status.max;
      resolve(passed ? undefined : `status ${status}`);
    });
    request.on('error', (error: NodeJS.ErrnoException) =>
      resolve(error.name === 'AbortError' ? `no answer within ${check.timeoutMs} ms` : (error.code ?? error.message)),
    );
    request.end();
  });
}

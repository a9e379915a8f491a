// The [metrics] listener of a cluster, served by the primary: /ready asks every serving worker over the cluster
// channel, /metrics sums theirs (prom-client's cluster aggregation).
import type { Worker } from 'node:cluster';
import type http from 'node:http';
import type { ListenAddress } from '../config/model.ts';
import { createHealthServer, type Readiness } from '../observability/health.ts';
import type { clusterMetrics } from '../observability/metrics.ts';
import { listenOn } from '../http/listen.ts';
import { READINESS_ANSWER, READINESS_QUERY } from './cluster-channel.ts';

/** How long /ready waits for each worker's answer; a worker that does not answer in time is not ready. */
const READINESS_WAIT_MS = 2_000;

export type ClusterMetrics = ReturnType<typeof clusterMetrics>;

/** The cluster's metrics and its [metrics] listener, when the configuration has one. */
export async function startClusterHealth(
  address: ListenAddress | undefined,
  serving: () => Worker[],
): Promise<{ metrics?: ClusterMetrics; health?: http.Server }> {
  if (!address) return {};
  // Imported here: a primary without [metrics] never loads prom-client.
  const metrics = (await import('../observability/metrics.ts')).clusterMetrics(serving);
  return { metrics, health: await serveClusterHealth(address, metrics, serving) };
}

/** Closes the listener and the connections still open on it. */
export async function stopClusterHealth(health: http.Server | undefined): Promise<void> {
  if (!health) return;
  health.closeAllConnections();
  await new Promise((resolve) => health.close(resolve));
}

async function serveClusterHealth(
  address: ListenAddress,
  metrics: ClusterMetrics,
  serving: () => Worker[],
): Promise<http.Server> {
  let queries = 0;
  const server = createHealthServer({
    metrics: async () => ({ text: await metrics.text(), contentType: metrics.contentType }),
    readiness: async () => {
      const workers = serving();
      const id = ++queries;
      const answers = await Promise.all(workers.map((worker) => askReadiness(worker, id)));
      return combineReadiness(workers.length, answers);
    },
  });
  await listenOn(server, 'metrics', address);
  return server;
}

/** One worker's answer to readiness query `id`; undefined when it cannot be asked or does not answer in time. */
function askReadiness(worker: Worker, id: number): Promise<Readiness | undefined> {
  return new Promise<Readiness | undefined>((resolve) => {
    const timer = setTimeout(() => done(undefined), READINESS_WAIT_MS);
    const onMessage = (message: { type?: string; id?: number } & Readiness) => {
      if (message?.type === READINESS_ANSWER && message.id === id) done(message);
    };
    function done(answer: Readiness | undefined) {
      clearTimeout(timer);
      worker.off('message', onMessage);
      resolve(answer);
    }
    worker.on('message', onMessage);
    if (worker.isConnected()) worker.send({ type: READINESS_QUERY, id });
    else done(undefined);
  });
}

/** The cluster is ready when it has workers and every one answered ready; a site's provider when it is in each. */
function combineReadiness(workers: number, answers: Array<Readiness | undefined>): Readiness {
  const sites = new Map<string, boolean>();
  for (const answer of answers)
    for (const s of answer?.sites ?? []) sites.set(s.site, (sites.get(s.site) ?? true) && s.provider_ready);
  // Every worker has its own connections to the store: the worst one is reported.
  const stores = answers.flatMap((answer) => (answer?.store ? [answer.store] : []));
  const store = stores.find((s) => s.state === 'degraded') ?? stores[0];
  const acmeStores = answers.flatMap((answer) => (answer?.acme_storage ? [answer.acme_storage] : []));
  const acmeStorage = acmeStores.find((s) => s.state === 'degraded') ?? acmeStores[0];
  return {
    ready: workers > 0 && answers.every((answer) => answer?.ready === true),
    sites: [...sites].map(([site, providerReady]) => ({ site, provider_ready: providerReady })),
    ...(store ? { store } : {}),
    ...(acmeStorage ? { acme_storage: acmeStorage } : {}),
  };
}

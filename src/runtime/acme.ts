// Wiring ACME into the lifecycle (runtime/gatehouse.ts): prepareAcme() when a configuration is provisioned (installs
// stored or temporary certificates and the HTTP-01 responder, no network), startAcme() once it serves (the scheduler
// orders and renews), stop when it is replaced or Gatehouse stops.
import type { Listening } from '../http/listeners.ts';
import type { Runtime } from '../http/runtime.ts';
import type { AcmeManager, AcmeOptions } from '../acme/manager.ts';

export async function prepareAcme(runtime: Runtime, options: AcmeOptions = {}): Promise<AcmeManager | undefined> {
  if (!runtime.config.sites.some((site) => site.tls.source === 'acme')) return undefined;
  // Loaded only when a site uses ACME: acme-client and the X.509 parser cost ≈ 40 MB of RSS and 0.4 s of start-up.
  const { AcmeManager } = await import('../acme/manager.ts');
  const manager = new AcmeManager(runtime.config, runtime.certificates, runtime.log, options);
  const { metrics } = runtime;
  if (metrics) manager.events.on('failed', (domain) => metrics.renewalFailed(domain));
  // First among the plain-HTTP responders: before the HTTPS redirect and everything else.
  runtime.plainHttpResponders.unshift(manager.responder());
  runtime.acmeStorageHealth = () => manager.store.health();
  await manager.prepare();
  return manager;
}

/** `scheduler`: whether this process orders and renews; the others only pick up what is stored (one per cluster). */
export function startAcme(manager: AcmeManager, listening: Listening, scheduler = true): void {
  const { httpPort } = listening.runtime.config.acme;
  if (listening.http.length === 0) {
    listening.runtime.log.error(
      'ACME HTTP-01 needs a plain-HTTP listener ([http] listen); certificates cannot be obtained',
    );
  } else if (!listening.http.some((address) => address.port === httpPort)) {
    listening.runtime.log.warn(
      { http_port: httpPort, http: listening.http.map((a) => a.port) },
      'no [http] listener on [acme] http_port: the CA connects there, so forward that port to one of ours',
    );
  }
  manager.setHttpListeners(listening.http);
  manager.start({ scheduler });
}

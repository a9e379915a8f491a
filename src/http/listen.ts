// Binding a listener, and the one-line answer when an address cannot be bound (nginx: `bind() to 0.0.0.0:443 failed
// (98: Address already in use)`, then exit): which listener, which address, why. `serve` prints it and exits 2.
import cluster from 'node:cluster';
import net, { type AddressInfo } from 'node:net';
import type { ListenAddress } from '../config/model.ts';

/** The config table whose `listen` names the address. */
export type ListenerName = 'https' | 'http' | 'metrics';

const REASONS: Record<string, string> = {
  EADDRINUSE: 'the address is already in use (EADDRINUSE): another process listens there',
  EACCES: 'permission denied (EACCES): ports below 1024 need root or CAP_NET_BIND_SERVICE',
  EADDRNOTAVAIL: 'no interface of this host has that address (EADDRNOTAVAIL)',
};

export class ListenError extends Error {
  readonly code: string;
  constructor(listener: ListenerName, address: ListenAddress, cause: NodeJS.ErrnoException) {
    super(
      `cannot listen on ${formatAddress(address.host, address.port)} ([${listener}] listen): ${REASONS[cause.code ?? ''] ?? cause.message}`,
      { cause },
    );
    this.code = cause.code ?? 'ERR_LISTEN';
  }
}

interface Listenable {
  listen(options: net.ListenOptions, callback: () => void): unknown;
  once(event: 'error', listener: (error: Error) => void): unknown;
  off(event: 'error', listener: (error: Error) => void): unknown;
  address(): AddressInfo | string | null;
}

/**
 * Listens on `address`; rejects with a ListenError. Cluster workers on a fixed port each bind their own socket with
 * SO_REUSEPORT, so the kernel spreads connections evenly (nginx `listen … reuseport`); port 0 keeps node:cluster's
 * shared handle (one common port).
 */
export function listenOn(server: Listenable, listener: ListenerName, address: ListenAddress): Promise<AddressInfo> {
  const own = cluster.isWorker && address.port !== 0;
  return new Promise((resolve, reject) => {
    const onError = (error: Error) => reject(new ListenError(listener, address, error as NodeJS.ErrnoException));
    server.once('error', onError);
    server.listen(
      { port: address.port, host: address.host, ...(own ? { exclusive: true, reusePort: true } : {}) },
      () => {
        server.off('error', onError);
        resolve(server.address() as AddressInfo);
      },
    );
  });
}

/**
 * Binds and releases a fixed-port address the way a cluster worker will (SO_REUSEPORT), so the primary can refuse to
 * start with one clear line instead of every worker failing with its own.
 */
export async function probeListen(listener: ListenerName, address: ListenAddress): Promise<void> {
  if (address.port === 0) return;
  const server = net.createServer();
  await new Promise<void>((resolve, reject) => {
    server.once('error', (error) => reject(new ListenError(listener, address, error as NodeJS.ErrnoException)));
    server.listen({ port: address.port, host: address.host, exclusive: true, reusePort: true }, () =>
      server.close(() => resolve()),
    );
  });
}

export function formatAddress(host: string, port: number): string {
  return host.includes(':') ? `[${host}]:${port}` : `${host}:${port}`;
}

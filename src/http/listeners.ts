// The HTTPS listeners (HTTP/2 and HTTP/1.1 on one port by ALPN, certificate by SNI), the plain-HTTP listeners and the
// [metrics] listener, one server object per listen address. They outlive a configuration: every handshake, request
// and upgrade reads the current one (`current()`), so a reload swaps what they serve without closing a socket, and
// apply() opens the addresses a new configuration adds and closes the ones it drops (nginx keeps its listening
// sockets across a reload the same way).
import cluster from 'node:cluster';
import http from 'node:http';
import http2 from 'node:http2';
import net, { type AddressInfo, type Server, type Socket } from 'node:net';
import type { Duplex } from 'node:stream';
import type { Config, ListenAddress } from '../config/model.ts';
import { limitResets, serverSettings } from '../base/http2-limits.ts';
import { createHealthServer } from '../observability/health.ts';
import { ConnectionTracker } from './connection-tracker.ts';
import { readProxyHeader } from './proxy-protocol.ts';
import { listenOn, type ListenerName } from './listen.ts';
import { runtimeReadiness, type Runtime } from './runtime.ts';
import type { AnyRequest, AnyResponse } from '../base/types.ts';

/** How long a balancer has to send the PROXY protocol header (nginx proxy_protocol_timeout is 30 s; HAProxy sends it at once). */
const PROXY_HEADER_TIMEOUT_MS = 10_000;

/** nginx's keepalive_timeout default. */
const KEEP_ALIVE_MS = 75_000;
/** Idle HTTP/2 sessions are closed after this (nginx http2_idle_timeout was 3 minutes). */
const HTTP2_IDLE_MS = 180_000;

export interface Listening {
  runtime: Runtime;
  https: AddressInfo[];
  http: AddressInfo[];
  /** The [metrics] listener (/ping, /ready), when configured. */
  metrics?: AddressInfo;
  /** Open client connections (HTTPS and plain HTTP). */
  connections(): number;
  /** Stop accepting, let in-flight requests finish within graceMs, then close everything. */
  stop(graceMs?: number): Promise<void>;
}

/** What the listeners hand each request to: the handlers of the configuration being served. */
export interface Handlers {
  runtime: Runtime;
  request(req: AnyRequest, res: AnyResponse): void;
  upgrade(req: http.IncomingMessage, socket: Socket, head: Buffer): void;
  plain(req: http.IncomingMessage, res: http.ServerResponse): void;
}

interface Bound<S extends Server> {
  server: S;
  address: AddressInfo;
}

const key = (address: ListenAddress) => `${address.host}|${address.port}`;

export class Listeners {
  readonly #tracker = new ConnectionTracker();
  readonly #current: () => Handlers;
  readonly #https = new Map<string, Bound<http2.Http2SecureServer>>();
  readonly #http = new Map<string, Bound<http.Server>>();
  #health?: { key: string } & Bound<http.Server>;
  #unsubscribe = () => {};

  constructor(current: () => Handlers) {
    this.#current = current;
  }

  get https(): AddressInfo[] {
    return [...this.#https.values()].map((bound) => bound.address);
  }
  get http(): AddressInfo[] {
    return [...this.#http.values()].map((bound) => bound.address);
  }
  get metrics(): AddressInfo | undefined {
    return this.#health?.address;
  }
  connections(): number {
    return this.#tracker.size;
  }

  /** The HTTPS port the plain-HTTP redirect names: the configured one, else the first one bound (a config may say 0). */
  httpsPort(config: Config): number {
    return config.http.https_port ?? this.https[0]?.port ?? config.https.listen[0]!.port;
  }

  /**
   * Makes the open listeners those of `config`: kept addresses stay open (their settings follow the config), new ones
   * are bound, dropped ones stop accepting (their connections finish as they would). When an address cannot be bound
   * (ListenError), the ones bound here are closed again and nothing else changed.
   */
  async apply(config: Config): Promise<void> {
    const opened: Server[] = [];
    const bind = async <S extends Server>(
      map: Map<string, Bound<S>>,
      name: ListenerName,
      addresses: ListenAddress[],
      create: () => S,
    ) => {
      const fresh = addresses.filter((address) => !map.has(key(address)));
      const bound = await settled(
        fresh.map(async (address) => {
          const server = create();
          opened.push(server);
          return { server, address: await listenOn(server, name, address) };
        }),
      );
      return new Map(fresh.map((address, i) => [key(address), bound[i]!]));
    };
    let https, plain, health;
    try {
      https = await bind(this.#https, 'https', config.https.listen, () => this.#httpsServer());
      plain = await bind(this.#http, 'http', config.http.listen, () => this.#httpServer());
      // In a cluster the primary serves [metrics] for all workers (runtime/cluster-health.ts).
      const metrics = cluster.isWorker ? undefined : config.metrics.listen;
      health =
        metrics && this.#health?.key !== key(metrics)
          ? {
              key: key(metrics),
              ...(await bind(new Map(), 'metrics', [metrics], () => this.#healthServer())).values().next().value!,
            }
          : undefined;
    } catch (error) {
      for (const server of opened) if (server.listening) server.close();
      throw error;
    }
    // In the configuration's order: the first HTTPS listener is the one the redirect names.
    reorder(this.#https, config.https.listen, https);
    reorder(this.#http, config.http.listen, plain);
    for (const { server } of this.#https.values()) server.updateSettings(serverSettings(config.https));
    const metrics = cluster.isWorker ? undefined : config.metrics.listen;
    if (health || (!metrics && this.#health)) this.#closeHealth();
    if (health) this.#health = health;
    this.useCertificates();
  }

  /**
   * Follows the current configuration's certificate store: the certificate for clients without SNI is set on each
   * server (SNI is answered per handshake from the current store), and again whenever the default site's changes.
   */
  useCertificates(): void {
    this.#unsubscribe();
    const { certificates } = this.#current().runtime;
    const update = () => {
      for (const { server } of this.#https.values()) server.setSecureContext(this.#tlsOptions());
    };
    this.#unsubscribe = certificates.onDefaultChange(update);
    update();
  }

  /** Stops accepting, lets the connections finish within graceMs (connection-tracker.ts), then cuts the rest. */
  async stop(graceMs: number): Promise<void> {
    this.#unsubscribe();
    // Only the listening sockets are closed here (net.Server's close): node:http's own close() would also destroy
    // every connection that has no request in flight, among them those accepted a moment ago whose first request
    // is on its way. The tracker decides what is idle.
    const servers = [...this.#https.values(), ...this.#http.values()].map((bound) => bound.server);
    const closed = servers.map(
      (server) => new Promise<void>((resolve) => net.Server.prototype.close.call(server, () => resolve())),
    );
    await this.#tracker.drain(graceMs);
    await Promise.all(closed);
    this.#closeHealth();
  }

  #tlsOptions(): http2.SecureServerOptions {
    return {
      ...this.#current().runtime.certificates.serverOptions(),
      // The store of the configuration being served now, not the one the server was made with.
      SNICallback: (servername, callback) => callback(null, this.#current().runtime.certificates.select(servername)),
    };
  }

  #httpsServer(): http2.Http2SecureServer {
    const tracker = this.#tracker;
    const log = () => this.#current().runtime.log;
    const server = http2.createSecureServer({
      allowHTTP1: true,
      noDelay: true,
      ...this.#tlsOptions(),
      ALPNProtocols: ['h2', 'http/1.1'],
    });
    this.#proxyProtocol(server, 'https');
    Object.assign(server, { keepAliveTimeout: KEEP_ALIVE_MS });
    server.setTimeout(HTTP2_IDLE_MS);
    server.on('connection', (socket: Socket) => tracker.addConnection(socket));
    server.on('secureConnection', (socket: Socket) => {
      tracker.addSocket(socket);
      // The client from the PROXY protocol header, for the TLS socket requests see (after the tracker keyed it).
      const client = proxiedClients.get((socket as Socket & { _parent?: Socket })._parent!);
      if (client) defineClient(socket, client);
      // Small responses must leave at once: with Nagle on, a keep-alive client waits for its delayed ACK (~40 ms)
      // on every response (measured: 1,000 → 3,500 requests/s). node:http sets this itself; the HTTP/2 server does not.
      socket.setNoDelay(true);
      // A client that resets a connection must never become an uncaught 'error' (seen once as EPIPE/ECONNRESET
      // while Chromium closed a WebSocket tunnel): every client socket has a listener from its first moment on.
      socket.on('error', (error) =>
        log().debug(
          { err: { message: error.message, code: (error as NodeJS.ErrnoException).code } },
          'client socket error',
        ),
      );
    });
    server.on('session', (session) => {
      tracker.addSession(session);
      limitResets(session, this.#current().runtime.config.https.http2_max_resets, (resets) =>
        log().warn(
          { client: session.socket?.remoteAddress, resets },
          'HTTP/2 client reset too many streams: connection closed (GOAWAY ENHANCE_YOUR_CALM)',
        ),
      );
    });
    // With allowHTTP1, HTTP/1.1 requests arrive here as node:http objects, HTTP/2 ones as compatibility objects.
    server.on('request', (req: AnyRequest, res: AnyResponse) => {
      if (!('stream' in req)) tracker.requestStarted(req.socket, res);
      this.#current().request(req, res);
    });
    server.on('upgrade', (req: http.IncomingMessage, socket: Duplex, head: Buffer) => {
      tracker.upgraded(socket as Socket);
      this.#current().upgrade(req, socket as Socket, head);
    });
    server.on('tlsClientError', (error, socket) =>
      log().debug(
        {
          err: { message: error.message, code: (error as NodeJS.ErrnoException).code },
          client: socket.remoteAddress,
          servername: socket.servername || undefined,
        },
        'TLS handshake failed',
      ),
    );
    server.on('sessionError', (error) => log().debug({ err: error }, 'HTTP/2 session error'));
    return server;
  }

  #httpServer(): http.Server {
    const server = http.createServer({ keepAliveTimeout: KEEP_ALIVE_MS }, (req, res) => {
      this.#tracker.requestStarted(req.socket, res);
      this.#current().plain(req, res);
    });
    this.#proxyProtocol(server, 'http');
    server.on('connection', (socket) => this.#tracker.addSocket(socket));
    return server;
  }

  /**
   * With [https]/[http] proxy_protocol (read per connection, so a reload switches it): a connection goes to the
   * server only once its PROXY protocol header is read, and only from a peer in [proxy] trusted_proxies (fail closed).
   * The header's source address then stands for the socket's peer everywhere (logs, ip_rules, rate limits,
   * X-Forwarded-For).
   */
  #proxyProtocol(server: Server, table: 'https' | 'http'): void {
    const handlers = server.rawListeners('connection') as ((socket: Socket) => void)[];
    server.removeAllListeners('connection');
    server.on('connection', (socket: Socket) => {
      const { config, trustedProxies, log } = this.#current().runtime;
      if (!config[table].proxy_protocol) {
        for (const handler of handlers) handler.call(server, socket);
        return;
      }
      const peer = socket.remoteAddress;
      const refuse = (reason: string) => {
        log.warn({ peer, listener: table, reason }, 'PROXY protocol: connection refused');
        socket.destroy();
      };
      socket.on('error', () => {});
      if (!trustedProxies.has(peer)) return refuse('the peer is not in [proxy] trusted_proxies');
      readProxyHeader(socket, PROXY_HEADER_TIMEOUT_MS).then(
        (header) => {
          if (socket.destroyed) return;
          if (header.source) {
            proxiedClients.set(socket, header.source);
            defineClient(socket, header.source);
          }
          for (const handler of handlers) handler.call(server, socket);
          // node:http reads through the socket's stream, left paused by the header reader; TLS reads its handle.
          if (table === 'http') socket.resume();
        },
        (error: Error) => refuse(error.message),
      );
    });
  }

  #healthServer(): http.Server {
    return createHealthServer({
      readiness: async () => runtimeReadiness(this.#current().runtime),
      metrics: async () => {
        const { registry } = this.#current().runtime.metrics!;
        return { text: await registry.metrics(), contentType: registry.contentType };
      },
    });
  }

  #closeHealth(): void {
    const health = this.#health;
    this.#health = undefined;
    if (!health) return;
    health.server.closeAllConnections();
    health.server.close();
  }
}

/** TCP sockets of PROXY protocol connections → their client, for the TLS socket made on top of them. */
const proxiedClients = new WeakMap<Socket, { address: string; port: number }>();

/** The client stands in for the peer on this socket (node:net's remoteAddress/remotePort getters are per socket). */
function defineClient(socket: Socket, client: { address: string; port: number }): void {
  Object.defineProperty(socket, 'remoteAddress', { value: client.address, configurable: true });
  Object.defineProperty(socket, 'remotePort', { value: client.port, configurable: true });
  Object.defineProperty(socket, 'remoteFamily', {
    value: net.isIPv6(client.address) ? 'IPv6' : 'IPv4',
    configurable: true,
  });
}

/**
 * The map of `addresses` in their order, from the kept and the just bound servers. A listener the new configuration
 * drops stops accepting; its open connections are served to their end.
 */
function reorder<S extends Server>(
  map: Map<string, Bound<S>>,
  addresses: ListenAddress[],
  added: Map<string, Bound<S>>,
): void {
  const next = new Map<string, Bound<S>>();
  for (const address of addresses) next.set(key(address), map.get(key(address)) ?? added.get(key(address))!);
  for (const [k, bound] of map) if (!next.has(k)) net.Server.prototype.close.call(bound.server);
  map.clear();
  for (const [k, bound] of next) map.set(k, bound);
}

/** Promise.all that waits for every attempt, so none is still binding when the caller cleans up after a failure. */
async function settled<T>(promises: Promise<T>[]): Promise<T[]> {
  const results = await Promise.allSettled(promises);
  const failed = results.find((result) => result.status === 'rejected');
  if (failed) throw failed.reason;
  return results.map((result) => (result as PromiseFulfilledResult<T>).value);
}

export function formatAddress(address: AddressInfo): string {
  return address.family === 'IPv6' ? `[${address.address}]:${address.port}` : `${address.address}:${address.port}`;
}

// Starts the HTTPS listeners (HTTP/2 and HTTP/1.1 on one port by ALPN, certificate by SNI) and the plain-HTTP
// listeners, and stops them gracefully. One server object per listen address, all sharing the same handlers.
import cluster from 'node:cluster';
import http from 'node:http';
import http2 from 'node:http2';
import net, { type AddressInfo, type Socket } from 'node:net';
import { createPlainHttpHandler } from '../http/plain-http-handler.ts';
import { limitResets, serverSettings } from '../http/http2-limits.ts';
import { createRequestHandler, createUpgradeHandler } from '../http/pipeline.ts';
import { createHealthServer, runtimeHealth } from '../observability/health.ts';
import { ConnectionTracker } from './connection-tracker.ts';
import { listenOn } from './listen.ts';
import type { Runtime } from './runtime.ts';
import type { AnyRequest, AnyResponse } from '../http/types.ts';

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

export async function startListeners(runtime: Runtime): Promise<Listening> {
  const tracker = new ConnectionTracker();
  const onRequest = createRequestHandler(runtime);
  const onUpgrade = createUpgradeHandler(runtime);
  const { config } = runtime;

  const httpsServers = config.https.listen.map(() => {
    const server = http2.createSecureServer({ allowHTTP1: true, noDelay: true, ...runtime.certificates.serverOptions(), ALPNProtocols: ['h2', 'http/1.1'] });
    const unsubscribe = runtime.certificates.onDefaultChange((pair) => server.setSecureContext({ ...runtime.certificates.serverOptions(), cert: pair.certPem, key: pair.keyPem }));
    server.once('close', unsubscribe);
    server.updateSettings(serverSettings(config.https));
    Object.assign(server, { keepAliveTimeout: KEEP_ALIVE_MS });
    server.setTimeout(HTTP2_IDLE_MS);
    server.on('connection', (socket: Socket) => tracker.addConnection(socket));
    server.on('secureConnection', (socket: Socket) => {
      tracker.addSocket(socket);
      // Small responses must leave at once: with Nagle on, a keep-alive client waits for its delayed ACK (~40 ms)
      // on every response (measured: 1,000 → 3,500 requests/s). node:http sets this itself; the HTTP/2 server does not.
      socket.setNoDelay(true);
      // A client that resets a connection must never become an uncaught 'error' (seen once as EPIPE/ECONNRESET
      // while Chromium closed a WebSocket tunnel): every client socket has a listener from its first moment on.
      socket.on('error', (error) => runtime.log.debug({ err: { message: error.message, code: (error as NodeJS.ErrnoException).code } }, 'client socket error'));
    });
    server.on('session', (session) => {
      tracker.addSession(session);
      limitResets(session, config.https.http2_max_resets, (resets) => runtime.log.warn({ client: session.socket?.remoteAddress, resets }, 'HTTP/2 client reset too many streams: connection closed (GOAWAY ENHANCE_YOUR_CALM)'));
    });
    // With allowHTTP1, HTTP/1.1 requests arrive here as node:http objects, HTTP/2 ones as compatibility objects.
    server.on('request', (req: AnyRequest, res: AnyResponse) => {
      if (!('stream' in req)) tracker.requestStarted(req.socket, res);
      onRequest(req, res);
    });
    server.on('upgrade', (req: http.IncomingMessage, socket: Socket, head: Buffer) => { tracker.upgraded(socket); onUpgrade(req, socket, head); });
    server.on('tlsClientError', (error, socket) => runtime.log.debug({ err: { message: error.message, code: (error as NodeJS.ErrnoException).code }, client: socket.remoteAddress, servername: socket.servername || undefined }, 'TLS handshake failed'));
    server.on('sessionError', (error) => runtime.log.debug({ err: error }, 'HTTP/2 session error'));
    return server;
  });

  // The redirect names the HTTPS port actually bound (a config may say port 0, as tests do).
  let httpsPort = config.http.https_port ?? config.https.listen[0]!.port;
  const plainHandler = createPlainHttpHandler(runtime, () => httpsPort);
  const httpServers = config.http.listen.map(() => {
    const server = http.createServer({ keepAliveTimeout: KEEP_ALIVE_MS }, (req, res) => { tracker.requestStarted(req.socket, res); plainHandler(req, res); });
    server.on('connection', (socket) => tracker.addSocket(socket));
    return server;
  });

  // In a cluster the primary serves [metrics] for all workers (runtime/cluster.ts).
  const healthServer = config.metrics.listen && !cluster.isWorker ? createHealthServer(runtimeHealth(runtime)) : undefined;
  let https: AddressInfo[], plain: AddressInfo[], metrics: AddressInfo | undefined;
  try {
    https = await settled(httpsServers.map((server, i) => listenOn(server, 'https', config.https.listen[i]!)));
    httpsPort = config.http.https_port ?? https[0]!.port;
    plain = await settled(httpServers.map((server, i) => listenOn(server, 'http', config.http.listen[i]!)));
    metrics = healthServer ? await listenOn(healthServer, 'metrics', config.metrics.listen!) : undefined;
  } catch (error) {
    // An address that cannot be bound (ListenError): release the ones that were, so nothing keeps the process alive.
    for (const server of [...httpsServers, ...httpServers, ...(healthServer ? [healthServer] : [])]) if (server.listening) server.close();
    throw error;
  }
  runtime.start();
  runtime.log.info({ https: https.map(format), http: plain.map(format), ...(metrics ? { metrics: format(metrics) } : {}), sites: runtime.siteList.map((s) => s.config.name) }, 'listening');

  let stopped: Promise<void> | undefined;
  return {
    runtime,
    https,
    http: plain,
    metrics,
    connections: () => tracker.size,
    stop(graceMs = config.lifecycle.shutdown_grace) {
      stopped ??= (async () => {
        runtime.stopping = true;
        // Only the listening sockets are closed here (net.Server's close): node:http's own close() would also destroy
        // every connection that has no request in flight, among them those accepted a moment ago whose first request
        // is on its way. The tracker decides what is idle.
        const closed = [...httpsServers, ...httpServers].map((server) => new Promise<void>((resolve) => net.Server.prototype.close.call(server, () => resolve())));
        await tracker.drain(graceMs);
        await Promise.all(closed);
        if (healthServer) { healthServer.closeAllConnections(); await new Promise<void>((resolve) => healthServer.close(() => resolve())); }
        await runtime.close();
        runtime.log.info('stopped');
      })();
      return stopped;
    },
  };
}

/** Promise.all that waits for every attempt, so none is still binding when the caller cleans up after a failure. */
async function settled<T>(promises: Promise<T>[]): Promise<T[]> {
  const results = await Promise.allSettled(promises);
  const failed = results.find((result) => result.status === 'rejected');
  if (failed) throw failed.reason;
  return results.map((result) => (result as PromiseFulfilledResult<T>).value);
}

function format(address: AddressInfo): string {
  return address.family === 'IPv6' ? `[${address.address}]:${address.port}` : `${address.address}:${address.port}`;
}

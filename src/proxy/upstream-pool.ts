// The keep-alive connections to one upstream server: an idle list (last in, first out, so the warmest socket serves
// and the others age out), new connections with net.connect / tls.connect (SNI = the upstream's host name, the group's
// CA if it has one), and one sweep per process, about once a second, that applies every exchange's connect, read and
// send timeouts and closes connections idle for 3 to 4 s, before a backend's own keep-alive timeout (Node: 5 s) can
// race a request (nginx's timers are just as coarse: timer_resolution). No timer per request or connection.
import net from 'node:net';
import tls from 'node:tls';
import type { ConnectionOwner } from './upstream-connection.ts';
import { UpstreamConnection } from './upstream-connection.ts';

/** Idle connections are closed once idle this long (the sweep runs every SWEEP_MS, so they live 3 to 4 s). */
const IDLE_MS = 3_000;
const SWEEP_MS = 1_000;

export class UpstreamPool implements ConnectionOwner {
  readonly origin: string;
  readonly #host: string;
  readonly #port: number;
  readonly #secure: boolean;
  readonly #ca: string | undefined;
  readonly #idle: UpstreamConnection[] = [];
  readonly #all = new Set<UpstreamConnection>();
  /** The last TLS session, offered to the next connection (resumption saves the upstream a full handshake). */
  #session: Buffer | undefined;
  #closing = false;
  #closed: (() => void) | undefined;

  constructor(origin: string, options: { ca?: string } = {}) {
    const url = new URL(origin);
    this.origin = origin;
    this.#secure = url.protocol === 'https:';
    this.#host = url.hostname.startsWith('[') ? url.hostname.slice(1, -1) : url.hostname;
    this.#port = Number(url.port) || (this.#secure ? 443 : 80);
    this.#ca = options.ca;
  }

  /** Connections open now (idle or busy). */
  get size(): number {
    return this.#all.size;
  }

  /**
   * An idle connection, or a new one that is connecting (it writes its request once connected); a new one always when
   * `fresh` (the retry after a keep-alive connection failed).
   */
  acquire(connectTimeoutMs: number, fresh = false): UpstreamConnection {
    let connection: UpstreamConnection | undefined;
    while (!fresh && (connection = this.#idle.pop()) !== undefined) {
      if (connection.usable) return connection;
      connection.destroy();
    }
    return this.#connect(connectTimeoutMs);
  }

  release(connection: UpstreamConnection): void {
    if (this.#closing || !connection.usable) {
      connection.destroy();
      return;
    }
    connection.idleSince = Date.now();
    this.#idle.push(connection);
  }

  forget(connection: UpstreamConnection): void {
    this.#all.delete(connection);
    const at = this.#idle.indexOf(connection);
    if (at >= 0) this.#idle.splice(at, 1);
    if (this.#all.size === 0) {
      sweeping.delete(this);
      this.#closed?.();
    }
  }

  sweep(now: number): void {
    for (const connection of this.#all) connection.sweep(now, IDLE_MS);
  }

  /** Closes idle connections now and busy ones when their exchange ends, or after graceMs at the latest. */
  async close(graceMs: number): Promise<void> {
    this.#closing = true;
    for (const connection of this.#idle.splice(0)) connection.destroy();
    if (this.#all.size === 0) return;
    let timer: NodeJS.Timeout | undefined;
    await new Promise<void>((resolve) => {
      this.#closed = resolve;
      // Destroyed sockets still report 'close': forget() resolves once the last one has.
      timer = setTimeout(() => this.destroy(), graceMs);
    });
    clearTimeout(timer);
  }

  destroy(): void {
    this.#closing = true;
    for (const connection of [...this.#all]) connection.destroy();
  }

  #connect(connectTimeoutMs: number): UpstreamConnection {
    const open = (onread: net.OnReadOpts): net.Socket => {
      if (!this.#secure) return net.connect({ host: this.#host, port: this.#port, onread });
      const socket = tls.connect({
        host: this.#host,
        port: this.#port,
        // SNI carries a host name, never an IP address (RFC 6066 §3).
        servername: net.isIP(this.#host) === 0 ? this.#host : '',
        ca: this.#ca,
        ALPNProtocols: ['http/1.1'],
        session: this.#session,
        // tls.connect takes `onread` like net.connect (Node's TLSSocket passes it on); @types/node omits it.
        onread,
      } as tls.ConnectionOptions);
      socket.on('session', this.#onSession);
      return socket;
    };
    const connection = new UpstreamConnection(open, this, connectTimeoutMs, this.#secure);
    this.#all.add(connection);
    if (sweeping.size === 0) startSweeping();
    sweeping.add(this);
    return connection;
  }

  readonly #onSession = (session: Buffer): void => {
    this.#session = session;
  };
}

// One sweep for the whole process, running only while some pool has connections.
const sweeping = new Set<UpstreamPool>();
let sweeper: NodeJS.Timeout | undefined;
function startSweeping(): void {
  if (sweeper !== undefined) return;
  sweeper = setInterval(() => {
    if (sweeping.size === 0) {
      clearInterval(sweeper);
      sweeper = undefined;
      return;
    }
    const now = Date.now();
    for (const pool of sweeping) pool.sweep(now);
  }, SWEEP_MS);
  sweeper.unref();
}

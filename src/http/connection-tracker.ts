// Knows every client connection and whether it is busy, so a graceful stop can close idle ones at once,
// let busy ones finish their request, and cut what is left when the grace period ends.
import type { Socket } from 'node:net';
import type { ServerHttp2Session } from 'node:http2';

/**
 * How long a stop lets a connection accepted just before it (still in its TLS handshake, or secure but without its
 * first request) send that request, which is then served with `Connection: close` / GOAWAY. Such connections were
 * handed to this process by the listener, often by the kernel or the cluster primary a moment before a reload retired
 * it: closing them at once fails requests no other process can take. A client that never sends one is cut after it.
 */
const FIRST_REQUEST_MS = 5_000;

export class ConnectionTracker {
  private readonly sockets = new Set<Socket>();
  private readonly busy = new Map<Socket, number>();
  private readonly sessions = new Set<ServerHttp2Session>();
  /** TCP connections to an HTTPS listener whose TLS handshake has not completed, by their addresses. */
  private readonly handshaking = new Map<string, Socket>();
  /** Secure connections (HTTP/1.1 sockets and HTTP/2 sessions' sockets) that have not begun a request yet. */
  private readonly fresh = new Set<Socket>();
  private stopping = false;

  /** A TCP connection to an HTTPS listener, before its TLS handshake ('connection'); addSocket() follows once it is secure. */
  addConnection(socket: Socket): void {
    const key = addresses(socket);
    this.handshaking.set(key, socket);
    socket.once('close', () => {
      if (this.handshaking.get(key) === socket) this.handshaking.delete(key);
    });
  }

  addSocket(socket: Socket): void {
    this.handshaking.delete(addresses(socket));
    this.sockets.add(socket);
    this.fresh.add(socket);
    socket.once('close', () => {
      this.sockets.delete(socket);
      this.busy.delete(socket);
      this.fresh.delete(socket);
    });
    // During a stop, a connection whose sending side we have closed (after its last response, or a GOAWAY) is
    // closed whole at once, as nginx closes it, instead of waiting for the client's FIN: a client that went away
    // (asleep, out of reach) never sends one, and would hold the stop for the whole grace period.
    socket.once('finish', () => {
      if (this.stopping) socket.destroy();
    });
  }

  addSession(session: ServerHttp2Session): void {
    this.sessions.add(session);
    session.once('close', () => this.sessions.delete(session));
    // A new session's first stream is served even during a stop: GOAWAY follows it (its last stream id admits it).
    session.once('stream', () => {
      if (session.socket) this.fresh.delete(session.socket as Socket);
      if (this.stopping) setImmediate(() => session.close());
    });
  }

  /** Marks an HTTP/1.1 connection busy until the response is over; afterwards a stopping server closes it. */
  requestStarted(
    socket: Socket | null | undefined,
    done: { once(event: 'close', listener: () => void): unknown },
  ): void {
    if (!socket) return;
    this.fresh.delete(socket);
    this.busy.set(socket, (this.busy.get(socket) ?? 0) + 1);
    done.once('close', () => {
      const left = (this.busy.get(socket) ?? 1) - 1;
      if (left > 0) this.busy.set(socket, left);
      else this.busy.delete(socket);
      if (this.stopping && left <= 0)
        setImmediate(() => {
          if (!this.busy.has(socket)) socket.end();
        });
    });
  }

  /** Upgraded sockets (WebSockets) are busy for their whole life. */
  upgraded(socket: Socket): void {
    this.busy.set(socket, 1);
  }

  get size(): number {
    return this.sockets.size;
  }

  /**
   * Closes idle connections now, lets busy ones finish, and destroys the rest after graceMs. Idle: no request in
   * flight on an HTTP/1.1 connection that has served one, no stream on an HTTP/2 one (GOAWAY, RFC 9113 §6.8).
   * Connections that have not sent their first request yet get FIRST_REQUEST_MS to send it.
   */
  async drain(graceMs: number): Promise<void> {
    this.stopping = true;
    for (const session of this.sessions) if (!this.fresh.has(session.socket as Socket)) session.close();
    for (const socket of this.sockets) {
      if (socket.writableFinished) socket.destroy();
      else if (!this.busy.has(socket) && !this.fresh.has(socket) && !this.isHttp2(socket)) socket.end();
    }
    const silent = setTimeout(
      () => {
        for (const socket of this.handshaking.values()) socket.destroy();
        for (const socket of this.fresh) socket.destroy();
      },
      Math.min(graceMs, FIRST_REQUEST_MS),
    );
    if (this.sockets.size > 0 || this.handshaking.size > 0) {
      await new Promise<void>((resolve) => {
        const check = setInterval(() => {
          if (this.sockets.size === 0 && this.handshaking.size === 0) finish();
        }, 25);
        const deadline = setTimeout(() => {
          this.destroyAll();
          finish();
        }, graceMs);
        const finish = () => {
          clearInterval(check);
          clearTimeout(deadline);
          resolve();
        };
      });
    }
    clearTimeout(silent);
  }

  destroyAll(): void {
    for (const socket of this.handshaking.values()) socket.destroy();
    for (const session of this.sessions) session.destroy();
    for (const socket of this.sockets) socket.destroy();
  }

  private isHttp2(socket: Socket): boolean {
    return (socket as Socket & { alpnProtocol?: string | false }).alpnProtocol === 'h2';
  }
}

/** Both ends of a connection: the same for the TCP socket and the TLS socket on top of it. */
function addresses(socket: Socket): string {
  return `${socket.localAddress}|${socket.localPort}|${socket.remoteAddress}|${socket.remotePort}`;
}

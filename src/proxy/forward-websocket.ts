// Forwards an HTTP/1.1 Upgrade (WebSocket) request with http-proxy-3, which pipes the two sockets once the
// upstream answers 101 and relays any other answer as is. After the upgrade neither socket has an idle timeout:
// a quiet WebSocket is not an error, and the read timeout only bounds the wait for the upstream's answer.
import type { IncomingMessage } from 'node:http';
import type { Socket } from 'node:net';
import type { ProxyServer } from 'http-proxy-3';
import { ownHeaders } from '../base/own-answer.ts';
import type { Route } from '../config/model.ts';
import { ERRORS, type ErrorCode } from '../base/errors.ts';
import { errorCodeFor, isConnectFailure } from './upstream-errors.ts';
import type { UpstreamGroupPool } from './upstream-pools.ts';

/** Per-request facts the proxy's shared 'proxyReqWs' event needs: how long to wait, whom to tell of the answer. */
const pending = new WeakMap<
  IncomingMessage,
  { readTimeoutMs: number; answered(status: number, upstream?: Socket): void }
>();
/** What to call once a tunnel is open, by upstream socket. http-proxy-3 emits 'open' right after it has piped the two
 *  sockets and before a byte flows (the bytes that came with the 101 wait in the socket's buffer until then). */
const opening = new WeakMap<Socket, () => void>();
let wsProxy: Promise<ProxyServer> | undefined;

/** The one proxy of this process, made at the first upgrade: a configuration whose clients never open a WebSocket
 *  never loads http-proxy-3. */
function webSocketProxy(): Promise<ProxyServer> {
  wsProxy ??= import('http-proxy-3').then(({ createProxyServer }) => {
    const proxy = createProxyServer({ ws: true, xfwd: false, prependPath: false });
    // http-proxy-3 re-emits every error of a WebSocket client socket (a reset, an EPIPE while the tunnel closes) on the
    // proxy server, and throws it when nobody listens there: one client resetting its connection would end the process.
    // Upstream errors reach each forward's own callback; a client socket's error only means the tunnel is over.
    proxy.on('error', (_error, _req, socket) => {
      if (socket && 'destroy' in socket) (socket as Socket).destroy();
    });
    proxy.on('proxyReqWs', (proxyReq, req, socket) => {
      // A WebSocket is over once its server has closed the TCP connection (RFC 6455 §7.1.1: the server closes first).
      // http-proxy-3 then only half-closes the client's side and waits for the client's FIN, which a client that went
      // away never sends: the client connection is closed whole instead, as soon as what was relayed is out.
      proxyReq.once('upgrade', (_res: IncomingMessage, upstream: Socket) =>
        upstream.once('end', () => socket.destroySoon()),
      );
      const entry = pending.get(req);
      if (!entry) return;
      proxyReq.setTimeout(entry.readTimeoutMs, () =>
        proxyReq.destroy(
          Object.assign(new Error('upstream did not answer the upgrade in time'), { code: 'ERR_UPSTREAM_TIMEOUT' }),
        ),
      );
      proxyReq.once('upgrade', (_res, upstream: Socket) => entry.answered(101, upstream));
      proxyReq.once('response', (res: IncomingMessage) => entry.answered(res.statusCode ?? 502));
    });
    proxy.on('open', (upstream) => {
      opening.get(upstream)?.();
      opening.delete(upstream);
    });
    return proxy;
  });
  return wsProxy;
}

/** status: 101 (the tunnel is open), the upstream's other answer relayed as is, or our error's; unset when the client left first. */
export interface UpgradeResult {
  upstream: string;
  status?: number;
  error?: ErrorCode;
  cause?: Error;
}

/** Resolves when the upstream has answered (or failed); the tunnel then lives on by itself. */
export async function forwardWebSocket(
  req: IncomingMessage,
  socket: Socket,
  head: Buffer,
  options: {
    route: Route;
    group: UpstreamGroupPool;
    headers: Record<string, string | string[]>;
    path: string;
    requestId: string;
    /** Called with the upstream socket once the tunnel is piped, before any byte passes it (and before this resolves). */
    onOpen?: (upstream: Socket) => void;
  },
): Promise<UpgradeResult> {
  const { route, group } = options;
  const server = group.attemptOrder()[0]!;
  const proxy = await webSocketProxy();
  if (socket.destroyed) return { upstream: server.origin };
  req.headers = options.headers;
  req.url = options.path;
  return new Promise((resolve) => {
    let answered = false;
    const settle = (result: UpgradeResult) => {
      socket.off('close', onClose);
      pending.delete(req);
      resolve(result);
    };
    const onClose = () => settle({ upstream: server.origin });
    socket.once('close', onClose);
    pending.set(req, {
      readTimeoutMs: route.readTimeoutMs,
      answered: (status, upstream) => {
        answered = true;
        group.markUp(server);
        const { onOpen } = options;
        if (upstream && onOpen) opening.set(upstream, () => onOpen(upstream));
        settle({ upstream: server.origin, status });
      },
    });
    proxy.ws(req, socket, head, { target: server.origin, connectTimeout: route.connectTimeoutMs }, (error) => {
      // Once the upstream has answered, the client socket carries WebSocket frames (or the relayed answer):
      // an error then ends the tunnel, it must not write an HTTP error page into the stream.
      if (answered) {
        socket.destroy();
        return;
      }
      if (isConnectFailure(error)) group.markDown(server);
      const errorCode = errorCodeFor(error) ?? 'ERR_UPSTREAM_RESET';
      writeRawError(socket, errorCode, options.requestId);
      settle({ upstream: server.origin, status: ERRORS[errorCode].status, error: errorCode, cause: error as Error });
    });
  });
}

/** An error answer on a socket that has not been handed to any HTTP response object. */
export function writeRawError(
  socket: Socket,
  code: ErrorCode,
  requestId: string,
  extraHeaders: Record<string, string> = {},
): void {
  if (!socket.writable) {
    socket.destroy();
    return;
  }
  const { status, title, detail } = ERRORS[code];
  const body = JSON.stringify({ error: code, status, message: detail, request_id: requestId });
  const headers = ownHeaders(requestId, { connection: 'close', ...extraHeaders }, { type: 'json', text: body });
  socket.end(
    `HTTP/1.1 ${status} ${title}\r\n${Object.entries(headers)
      .map(([k, v]) => `${k}: ${v}`)
      .join('\r\n')}\r\n\r\n${body}`,
  );
}

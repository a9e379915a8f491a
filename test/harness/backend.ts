// Small programmable upstream servers for tests: each request is handed to the test's own handler.
import http from 'node:http';
import net, { type AddressInfo } from 'node:net';
import type { TestContext } from 'node:test';
import type { WebSocketServer } from 'ws';

export interface Backend {
  url: string;
  port: number;
  server: http.Server;
  requests: http.IncomingMessage[];
}

export async function startBackend(
  t: TestContext,
  handler: (req: http.IncomingMessage, res: http.ServerResponse) => void,
): Promise<Backend> {
  const requests: http.IncomingMessage[] = [];
  const server = http.createServer((req, res) => {
    requests.push(req);
    handler(req, res);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  t.after(
    () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  );
  const port = (server.address() as AddressInfo).port;
  return { url: `http://127.0.0.1:${port}`, port, server, requests };
}

/**
 * A port on 127.0.0.1 that nobody listens on right now, for a server the test is about to start there. Not for
 * "connection refused" targets: another test running beside this one may bind it meanwhile (use refusedPort()).
 */
export async function closedPort(): Promise<number> {
  const server = http.createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}

export function readAll(stream: NodeJS.ReadableStream): Promise<string> {
  return new Promise((resolve, reject) => {
    let text = '';
    stream.setEncoding('utf8');
    stream.on('data', (chunk: string) => {
      text += chunk;
    });
    stream.on('end', () => resolve(text));
    stream.on('error', reject);
  });
}

/**
 * A port whose connections are refused for the whole test: 9 (discard), which no test binds (their servers take
 * ephemeral ports) and no service here runs. Checked, so a machine where something listens there fails loudly.
 */
export async function refusedPort(): Promise<number> {
  const port = 9;
  const refused = await new Promise<boolean>((resolve) => {
    const socket = net.connect(port, '127.0.0.1');
    socket.once('connect', () => {
      socket.destroy();
      resolve(false);
    });
    socket.once('error', (error: NodeJS.ErrnoException) => resolve(error.code === 'ECONNREFUSED'));
  });
  if (!refused)
    throw new Error(`something listens on 127.0.0.1:${port}; the refused-connection tests need that port closed`);
  return port;
}

/** Listens on 127.0.0.1 port 0; when the test ends, ends the WebSocket clients and closes the server. */
export async function listenWithWebSockets(t: TestContext, server: http.Server, wss: WebSocketServer): Promise<void> {
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  t.after(
    () =>
      new Promise<void>((resolve) => {
        for (const c of wss.clients) c.terminate();
        wss.close();
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  );
}

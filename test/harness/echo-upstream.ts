// The suite's own upstream, on Express 5 (a real framework, as deployments put behind Gatehouse): every request is
// answered with what reached it (method, url, HTTP version, headers, body) as JSON, and WebSocket messages are echoed
// after a hello. The product's demo backend (src/demo/echo-backend.ts) stays the demo's: tests do not depend on it.
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import express from 'express';
import { WebSocketServer } from 'ws';

export interface Echoed {
  method: string;
  url: string;
  http_version: string;
  headers: http.IncomingHttpHeaders;
  body: string;
}

export interface EchoUpstream {
  url: string;
  port: number;
  server: http.Server;
  close(): Promise<void>;
}

export async function startEchoUpstream(host = '127.0.0.1', port = 0): Promise<EchoUpstream> {
  const app = express();
  app.disable('x-powered-by');
  app.set('etag', false);
  app.use(async (req, res) => {
    const chunks: Buffer[] = [];
    for await (const chunk of req) chunks.push(chunk as Buffer);
    const seen: Echoed = {
      method: req.method,
      url: req.originalUrl,
      http_version: req.httpVersion,
      headers: req.headers,
      body: Buffer.concat(chunks).toString('utf8'),
    };
    res.json(seen);
  });
  const server = http.createServer(app);
  const sockets = new WebSocketServer({ server });
  sockets.on('connection', (socket, req) => {
    socket.send(JSON.stringify({ hello: 'echo upstream', user: req.headers['x-auth-request-user'] ?? null }));
    socket.on('message', (data, isBinary) => socket.send(data, { binary: isBinary }));
  });
  await new Promise<void>((resolve) => server.listen(port, host, resolve));
  const bound = (server.address() as AddressInfo).port;
  return {
    url: `http://${host}:${bound}`,
    port: bound,
    server,
    close: () =>
      new Promise((resolve) => {
        for (const client of sockets.clients) client.terminate();
        sockets.close();
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}

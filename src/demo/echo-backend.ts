// The demo's upstream: answers every request with what it received (method, path, headers), as JSON or as a
// small HTML page, and echoes WebSocket messages.
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { WebSocketServer } from 'ws';

export interface EchoBackend {
  url: string;
  port: number;
  server: http.Server;
  close(): Promise<void>;
}

export async function startEchoBackend(host = '127.0.0.1', port = 0): Promise<EchoBackend> {
  const server = http.createServer((req, res) => {
    const seen = { method: req.method, url: req.url, http_version: req.httpVersion, headers: req.headers };
    if (/text\/html/.test(req.headers.accept ?? '') && !/application\/json/.test(req.headers.accept ?? '')) {
      res.writeHead(200, { 'content-type': 'text/html; charset=utf-8' }).end(page(seen));
      return;
    }
    res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify(seen, null, 2));
  });
  const sockets = new WebSocketServer({ server });
  sockets.on('connection', (socket, req) => {
    socket.send(JSON.stringify({ hello: 'echo backend', user: req.headers['x-auth-request-user'] ?? null }));
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

function page(seen: { method?: string; url?: string; headers: http.IncomingHttpHeaders }): string {
  const escape = (text: string) => text.replace(/[&<>"]/g, (c) => `&#${c.charCodeAt(0)};`);
  const rows = Object.entries(seen.headers)
    .map(([name, value]) => `<tr><th>${escape(name)}</th><td>${escape(String(value))}</td></tr>`)
    .join('');
  return `<!doctype html><html lang="en"><head><meta charset="utf-8"><title>Echo backend</title>
<style>body{font:14px system-ui;margin:2em}th{text-align:left;padding-right:1em;vertical-align:top}td{font-family:monospace;word-break:break-all}</style></head>
<body><h1>Echo backend</h1><p>${escape(seen.method ?? '')} <code>${escape(seen.url ?? '')}</code> reached the backend with these headers:</p>
<table id="headers">${rows}</table>
<h2>WebSocket</h2><p id="ws">connecting…</p>
<script>
const ws = new WebSocket(location.origin.replace(/^http/, 'ws') + '/ws');
ws.onmessage = (m) => { document.getElementById('ws').textContent = 'open, backend says: ' + m.data; };
ws.onclose = (e) => { document.getElementById('ws').textContent += ' (closed ' + e.code + ')'; };
</script></body></html>`;
}

// Reference systems, not products: the smallest Node forwarder on an undici Pool, on https.createServer or on the http2 server with allowHTTP1 that Gatehouse uses. They show
// how much of Gatehouse's cost is Node's and how much its own. Usage: node undici-forwarder.ts '<json options>'
import fs from 'node:fs';
import http2 from 'node:http2';
import https from 'node:https';
import type { IncomingHttpHeaders } from 'node:http';
import { Pool } from 'undici';

const o = JSON.parse(process.argv[2]!) as {
  port: number;
  upstreamPort: number;
  cert: string;
  key: string;
  server: 'https' | 'http2';
};
const pool = new Pool(`http://127.0.0.1:${o.upstreamPort}`, { connections: 64, pipelining: 1 });
const HOP = new Set(['connection', 'keep-alive', 'transfer-encoding', 'upgrade', 'te', 'trailer', 'proxy-connection']);
const strip = (headers: IncomingHttpHeaders) =>
  Object.fromEntries(
    Object.entries(headers).filter(([name, value]) => value !== undefined && name[0] !== ':' && !HOP.has(name)),
  ) as Record<string, string>;

type Res = {
  writeHead(status: number, headers: Record<string, string>): unknown;
  write(chunk: Buffer): boolean;
  end(): unknown;
  destroy(error?: Error): unknown;
};
function handle(req: { url?: string; method?: string; headers: IncomingHttpHeaders }, res: Res): void {
  pool.dispatch(
    { path: req.url ?? '/', method: req.method ?? 'GET', headers: strip(req.headers) },
    {
      onRequestStart() {},
      onResponseStart(_c, status, headers) {
        res.writeHead(status, strip(headers as IncomingHttpHeaders));
      },
      onResponseData(_c, chunk) {
        res.write(chunk);
      },
      onResponseEnd() {
        res.end();
      },
      onResponseError(_c, error) {
        process.stderr.write(`${error.message}\n`);
        res.destroy(error);
      },
    },
  );
}

const tls = { cert: fs.readFileSync(o.cert), key: fs.readFileSync(o.key), noDelay: true };
const server =
  o.server === 'https'
    ? https.createServer(tls, (req, res) => handle(req, res as unknown as Res))
    : http2.createSecureServer({ ...tls, allowHTTP1: true }, (req, res) => handle(req, res as unknown as Res));
server.listen(o.port, '127.0.0.1');
process.on('SIGTERM', () => process.exit(0));

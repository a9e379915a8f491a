// Reference, not product: node:https server + the raw keep-alive upstream pool (raw-upstream.ts, responses framed by
// Node's native llhttp). Beside node-undici-https it shows what an upstream client of one's own saves over undici's
// dispatcher. Request bodies are buffered (at most 1 MB) and sent with Content-Length.
// Usage: node rawpool-forwarder.ts '<json options>'
import fs from 'node:fs';
import https from 'node:https';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { RawPool, requestHead } from './raw-upstream.ts';

const o = JSON.parse(process.argv[2]!) as { port: number; upstreamPort: number; cert: string; key: string };
const pool = new RawPool(o.upstreamPort);
const MAX_BODY = 1024 * 1024;

function forward(req: IncomingMessage, res: ServerResponse, body: Buffer | undefined): void {
  const method = req.method ?? 'GET';
  let done = false;
  const upstream = pool.request(
    requestHead(method, req.url ?? '/', req.rawHeaders, body?.length ?? 0),
    body,
    method === 'HEAD',
    {
      onHead(status, _reason, headers, length) {
        if (length !== undefined) headers.push('content-length', String(length));
        res.writeHead(status, headers);
      },
      onBody(chunk, socket) {
        if (!res.write(chunk)) {
          socket.pause();
          res.once('drain', () => socket.resume());
        }
      },
      onEnd() {
        done = true;
        res.end();
      },
      onError(error) {
        done = true;
        process.stderr.write(`${error.message}\n`);
        if (res.headersSent) res.destroy(error);
        else res.writeHead(502, { 'content-length': '0' }).end();
      },
    },
  );
  res.on('close', () => {
    if (!done) upstream.abort();
  });
}

const server = https.createServer(
  { cert: fs.readFileSync(o.cert), key: fs.readFileSync(o.key), noDelay: true, keepAliveTimeout: 65_000 },
  (req, res) => {
    if (req.headers['content-length'] === undefined && req.headers['transfer-encoding'] === undefined)
      return forward(req, res, undefined);
    const chunks: Buffer[] = [];
    let size = 0;
    req.on('data', (chunk: Buffer) => {
      size += chunk.length;
      if (size > MAX_BODY) {
        res.writeHead(413, { 'content-length': '0', connection: 'close' }).end();
        req.destroy();
      } else chunks.push(chunk);
    });
    req.on('end', () => forward(req, res, Buffer.concat(chunks)));
  },
);
// Port 0 (tests): the port the system chose is printed, so nothing can take it between choosing and listening.
server.listen(o.port, '127.0.0.1', () =>
  process.stdout.write(`listening on ${(server.address() as { port: number }).port}\n`),
);
process.on('SIGTERM', () => process.exit(0));

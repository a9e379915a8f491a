// Measurement-only reference: a tls.Server whose HTTP/1.1 connections run on a loop of its own around Node's native
// llhttp (REQUEST mode, strict: no lenient flags, 16 KB header limit) instead of node:http's objects, forwarding over
// the raw upstream pool. It answers one question: how much does skipping node:http's server layer save? It has none
// of node:http's other protections (headers timeout, request timeout) beyond an idle timeout (one sweep for all
// connections), and no upgrades (501). Request bodies are buffered (at most 1 MB) and sent with Content-Length.
// Pipelined requests are answered in order, one at a time. Usage: node ownloop-tls.ts '<json options>'
import fs from 'node:fs';
import { STATUS_CODES } from 'node:http';
import tls from 'node:tls';
import { HTTPParser, methods, RawPool, requestHead } from './raw-upstream.ts';

const o = JSON.parse(process.argv[2]!) as { port: number; upstreamPort: number; cert: string; key: string };
const pool = new RawPool(o.upstreamPort);
const MAX_BODY = 1024 * 1024;
const MAX_HEADER_SIZE = 16 * 1024;
const IDLE_MS = 65_000;

interface Request {
  method: string;
  url: string;
  headers: string[];
  keepAlive: boolean;
  body: Buffer[];
  size: number;
}

class Connection {
  private parser = new HTTPParser();
  private partial: string[] = [];
  private partialUrl = '';
  private current: Request | undefined;
  private queue: Request[] = [];
  private busy = false;
  private closing = false;
  /** An error answer owed once the response in progress is complete. */
  private owed: number | undefined;
  private upstream: { abort(): void } | undefined;
  lastRead = performance.now();

  /** Idle: nothing read for IDLE_MS and no response in progress. */
  sweep(now: number): void {
    if (!this.busy && now - this.lastRead > IDLE_MS) this.socket.destroy();
  }

  private socket: tls.TLSSocket;

  constructor(socket: tls.TLSSocket) {
    this.socket = socket;
    const p = this.parser;
    p.initialize(HTTPParser.REQUEST, {}, MAX_HEADER_SIZE, HTTPParser.kLenientNone);
    p[HTTPParser.kOnHeaders] = (headers: string[], url: string) => {
      this.partial.push(...headers);
      this.partialUrl += url;
    };
    p[HTTPParser.kOnHeadersComplete] = (
      _major: number,
      _minor: number,
      headers: string[] | undefined,
      method: number,
      url: string | undefined,
      _status: unknown,
      _reason: unknown,
      upgrade: boolean,
      keepAlive: boolean,
    ) => {
      const all = this.partial.length ? [...this.partial, ...(headers ?? [])] : (headers ?? []);
      this.partial = [];
      const fullUrl = url ?? this.partialUrl;
      this.partialUrl = '';
      if (upgrade) {
        this.reject(501);
        return 0;
      }
      this.current = { method: methods[method]!, url: fullUrl, headers: all, keepAlive, body: [], size: 0 };
      return 0;
    };
    p[HTTPParser.kOnBody] = (chunk: Buffer) => {
      const request = this.current;
      if (!request) return;
      request.size += chunk.length;
      if (request.size > MAX_BODY) this.reject(413);
      else request.body.push(chunk);
    };
    p[HTTPParser.kOnMessageComplete] = () => {
      if (!this.current) return;
      this.queue.push(this.current);
      this.current = undefined;
      this.next();
    };
    open.add(this);
    socket.on('data', (chunk: Buffer) => {
      this.lastRead = performance.now();
      if (this.closing) return;
      const result = this.parser.execute(chunk);
      if (result instanceof Error) this.reject(result.message.includes('Header overflow') ? 431 : 400);
    });
    socket.on('end', () => {
      this.closing = true;
      if (!this.busy) socket.end();
    });
    socket.on('error', () => socket.destroy());
    socket.on('close', () => {
      open.delete(this);
      this.upstream?.abort();
      this.parser.close();
    });
  }

  /** A request that cannot be served: an error answer, then the connection closes (nothing after it is parsed). */
  private reject(status: number): void {
    if (this.closing) return;
    this.closing = true;
    this.current = undefined;
    this.queue = [];
    if (this.busy) this.owed = status;
    else this.socket.end(errorResponse(status));
  }

  private next(): void {
    if (this.busy) return;
    const request = this.queue.shift();
    if (!request) return;
    this.busy = true;
    const socket = this.socket;
    const body = request.body.length ? Buffer.concat(request.body) : undefined;
    const isHead = request.method === 'HEAD';
    let head: string | undefined;
    let begun = false;
    let chunked = false;
    const finish = () => {
      this.busy = false;
      this.upstream = undefined;
      if (this.owed !== undefined) socket.end(errorResponse(this.owed));
      else if (!request.keepAlive || this.closing) socket.end();
      else this.next();
    };
    this.upstream = pool.request(
      requestHead(request.method, request.url, request.headers, body?.length ?? 0),
      body,
      isHead,
      {
        onHead(status, reason, headers, length) {
          begun = true;
          // The head waits for the first body chunk (or the end): one TLS record for a small response.
          head = `HTTP/1.1 ${status} ${reason}\r\n`;
          for (let i = 0; i < headers.length; i += 2) head += `${headers[i]}: ${headers[i + 1]}\r\n`;
          const bodiless = isHead || status === 204 || status === 304;
          if (length !== undefined) head += `content-length: ${length}\r\n`;
          else if (!bodiless) {
            chunked = true;
            head += 'transfer-encoding: chunked\r\n';
          }
          if (!request.keepAlive) head += 'connection: close\r\n';
          head += '\r\n';
        },
        onBody(chunk, upstream) {
          let more: boolean;
          // Corked only when the chunk goes with framing: a lone corked write takes the TLS socket's writev path,
          // which costs more per MB than a plain write.
          if (head === undefined && !chunked) more = socket.write(chunk);
          else {
            socket.cork();
            if (head !== undefined) socket.write(head, 'latin1');
            head = undefined;
            if (chunked) socket.write(`${chunk.length.toString(16)}\r\n`, 'latin1');
            more = socket.write(chunk);
            if (chunked) socket.write('\r\n', 'latin1');
            socket.uncork();
          }
          if (!more) {
            upstream.pause();
            socket.once('drain', () => upstream.resume());
          }
        },
        onEnd() {
          socket.cork();
          if (head !== undefined) socket.write(head, 'latin1');
          head = undefined;
          if (chunked) socket.write('0\r\n\r\n', 'latin1');
          socket.uncork();
          finish();
        },
        onError: (error) => {
          process.stderr.write(`${error.message}\n`);
          this.closing = true;
          if (begun)
            socket.destroy(); // the response had begun: it cannot be completed
          else socket.end(errorResponse(502));
        },
      },
    );
  }
}

function errorResponse(status: number): string {
  return `HTTP/1.1 ${status} ${STATUS_CODES[status]}\r\ncontent-length: 0\r\nconnection: close\r\n\r\n`;
}

// One sweep for all connections instead of a timer per socket, as node:http checks its connections' timeouts.
const open = new Set<Connection>();
setInterval(() => {
  const now = performance.now();
  for (const connection of open) connection.sweep(now);
}, 5_000).unref();

const server = tls.createServer(
  { cert: fs.readFileSync(o.cert), key: fs.readFileSync(o.key), ALPNProtocols: ['http/1.1'], noDelay: true },
  (socket) => new Connection(socket),
);
// Port 0 (tests): the port the system chose is printed, so nothing can take it between choosing and listening.
server.listen(o.port, '127.0.0.1', () =>
  process.stdout.write(`listening on ${(server.address() as { port: number }).port}\n`),
);
process.on('SIGTERM', () => process.exit(0));

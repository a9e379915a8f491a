// Reference, not product: the smallest HTTP/1.1 upstream client on raw keep-alive `net` sockets, shared by the two
// raw reference systems (rawpool-forwarder.ts, ownloop-tls.ts). The request head goes out in one write; responses are
// framed by Node's own llhttp binding (the parser node:http uses), strict, one parser per socket for its life.
// Deliberately without timeouts, retries to other servers or header rules: it shows what forwarding itself costs.
import net from 'node:net';
import { createRequire } from 'node:module';

/** The native parser binding (node:http's own), typed as far as this file uses it. */
export interface NativeParser {
  initialize(type: number, resource: object, maxHeaderSize: number, lenient: number): void;
  execute(chunk: Buffer): number | Error;
  finish(): number | Error | undefined;
  close(): void;
  [key: number]: unknown;
}
export const { HTTPParser, methods } = createRequire(import.meta.url)('_http_common') as {
  HTTPParser: {
    new (): NativeParser;
    REQUEST: number;
    RESPONSE: number;
    kOnHeaders: number;
    kOnHeadersComplete: number;
    kOnBody: number;
    kOnMessageComplete: number;
    kLenientNone: number;
  };
  methods: string[];
};

/** Hop-by-hop headers (RFC 9110 §7.6.1) and the framing ones each side sets itself. */
export const HOP = new Set([
  'connection',
  'keep-alive',
  'transfer-encoding',
  'upgrade',
  'te',
  'trailer',
  'proxy-connection',
  'content-length',
]);

/** What a forwarder hands the pool for one request; `upstream` pauses/resumes the socket for backpressure. */
export interface Exchange {
  /** `headers` is flat ([name, value, …]) without hop-by-hop ones; `length` is the upstream's Content-Length. */
  onHead(status: number, reason: string, headers: string[], length: number | undefined): void;
  onBody(chunk: Buffer, upstream: { pause(): void; resume(): void }): void;
  onEnd(): void;
  onError(error: Error): void;
}

const MAX_HEADER_SIZE = 16 * 1024;

class Conn {
  readonly socket: net.Socket;
  readonly parser = new HTTPParser();
  exchange: Exchange | undefined;
  /** Set once the socket has served a response: a close before any byte of the next one is a stale keep-alive. */
  reused = false;
  received = false;
  keepAlive = false;
  skipBody = false;
  informational = false;
  dead = false;
  retry: (() => void) | undefined;
  headers: string[] = [];

  private pool: RawPool;

  constructor(pool: RawPool, port: number, host: string) {
    this.pool = pool;
    this.socket = net.connect({ port, host, noDelay: true });
    this.parser.initialize(HTTPParser.RESPONSE, {}, MAX_HEADER_SIZE, HTTPParser.kLenientNone);
    // More than 32 header lines arrive in slices before headers-complete (as in node:http's client).
    this.parser[HTTPParser.kOnHeaders] = (headers: string[]) => {
      this.headers.push(...headers);
    };
    this.parser[HTTPParser.kOnHeadersComplete] = (
      _major: number,
      _minor: number,
      headers: string[] | undefined,
      _method: unknown,
      _url: unknown,
      status: number,
      reason: string,
      _upgrade: boolean,
      keepAlive: boolean,
    ) => {
      const all = this.headers.length ? [...this.headers, ...(headers ?? [])] : (headers ?? []);
      this.headers = [];
      // 1xx (100 Continue, 103 Early Hints) are not the response: the final one follows on the same message stream.
      if (status >= 100 && status < 200) {
        this.informational = true;
        return 0;
      }
      this.keepAlive = keepAlive;
      const flat: string[] = [];
      let length: number | undefined;
      for (let i = 0; i < all.length; i += 2) {
        const name = all[i]!.toLowerCase();
        if (name === 'content-length') length = Number(all[i + 1]);
        if (!HOP.has(name)) flat.push(all[i]!, all[i + 1]!);
      }
      this.exchange?.onHead(status, reason, flat, length);
      // 1: llhttp skips the body (HEAD), exactly as node:http's client does.
      return this.skipBody ? 1 : 0;
    };
    this.parser[HTTPParser.kOnBody] = (chunk: Buffer) => this.exchange?.onBody(chunk, this.socket);
    this.parser[HTTPParser.kOnMessageComplete] = () => {
      const exchange = this.exchange;
      if (this.informational || !exchange) {
        this.informational = false;
        return;
      }
      this.exchange = undefined;
      this.reused = true;
      // Back in the pool before onEnd, so a request the caller sends from onEnd reuses this socket.
      if (this.keepAlive) this.pool.release(this);
      else this.socket.destroy(); // 'close' then retires it (not from inside the parser's own callback)
      exchange.onEnd();
    };
    this.socket.on('data', (chunk: Buffer) => {
      this.received = true;
      const result = this.parser.execute(chunk);
      if (result instanceof Error) this.fail(result);
    });
    this.socket.on('end', () => {
      // A close-delimited body ends here; finish() completes it or reports a truncated message.
      const result = this.parser.finish();
      if (result instanceof Error) this.fail(result);
    });
    this.socket.on('error', (error) => this.fail(error));
    this.socket.on('close', () => this.fail(new Error('upstream closed the connection')));
  }

  send(head: string, body: Buffer | undefined, skipBody: boolean, exchange: Exchange, retry: () => void): void {
    this.exchange = exchange;
    this.skipBody = skipBody;
    this.received = false;
    this.retry = retry;
    if (body?.length) {
      this.socket.cork();
      this.socket.write(head, 'latin1');
      this.socket.write(body);
      this.socket.uncork();
    } else this.socket.write(head, 'latin1');
  }

  /** Drops the socket; the exchange on it fails, or is retried once when a reused socket closed before answering. */
  fail(error: Error): void {
    if (!this.dead) {
      this.dead = true;
      this.pool.forget(this);
      this.socket.destroy();
      this.parser.close();
    }
    const exchange = this.exchange;
    this.exchange = undefined;
    if (!exchange) return;
    if (this.reused && !this.received && this.retry) this.retry();
    else exchange.onError(error);
  }

  /** The client went away: the exchange is abandoned and the socket with it (a half-read response cannot be reused). */
  abort(): void {
    this.exchange = undefined;
    this.fail(new Error('aborted'));
  }
}

export class RawPool {
  private idle: Conn[] = [];

  private port: number;
  private host: string;

  constructor(port: number, host = '127.0.0.1') {
    this.port = port;
    this.host = host;
  }

  /** Sends one request (head serialized by the caller, ending in CRLF CRLF); returns a handle to abort it. */
  request(head: string, body: Buffer | undefined, skipBody: boolean, exchange: Exchange): { abort(): void } {
    const conn = this.idle.pop() ?? this.open();
    // Like nginx: a keep-alive socket the upstream closed while idle is retried once on a fresh one.
    const handle = { conn };
    conn.send(head, body, skipBody, exchange, () => {
      handle.conn = this.open();
      handle.conn.send(head, body, skipBody, exchange, () => exchange.onError(new Error('upstream closed twice')));
    });
    return { abort: () => handle.conn.abort() };
  }

  release(conn: Conn): void {
    this.idle.push(conn);
  }

  forget(conn: Conn): void {
    const at = this.idle.indexOf(conn);
    if (at >= 0) this.idle.splice(at, 1);
  }

  private open(): Conn {
    return new Conn(this, this.port, this.host);
  }
}

/** The upstream request head: request line, the client's end-to-end headers, framing for a buffered body. */
export function requestHead(method: string, url: string, headers: readonly string[], bodyLength: number): string {
  let head = `${method} ${url} HTTP/1.1\r\n`;
  for (let i = 0; i < headers.length; i += 2) {
    if (!HOP.has(headers[i]!.toLowerCase())) head += `${headers[i]}: ${headers[i + 1]}\r\n`;
  }
  if (bodyLength > 0 || (method !== 'GET' && method !== 'HEAD')) head += `content-length: ${bodyLength}\r\n`;
  return `${head}\r\n`;
}

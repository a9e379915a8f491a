// One keep-alive connection to an upstream server: a raw net/tls socket, Node's own llhttp parser (the one node:http
// uses, strict: no lenient flags), and at most one exchange at a time. Its parser callbacks and socket listeners are
// bound once per connection; an exchange only brings its handler, so a request costs no closures, timers or listeners
// of its own here. Framing follows RFC 9112 §6.3 as llhttp applies it: Content-Length, chunked, or delimited by the
// close (the connection is then not reused); HEAD, 204 and 304 without a body; 1xx skipped; two Content-Lengths,
// or Content-Length with Transfer-Encoding, are a parse error: 502 and the socket is discarded (response smuggling).
//
// The socket reads into buffers of read-buffers.ts (net's `onread`), never a fresh Buffer per read. llhttp parses
// every head and every chunked or close-delimited body; a body with a Content-Length of at least a read's size is
// counted through by the connection itself and its bytes go to the client straight from the read buffer (llhttp
// would copy each piece into a new Buffer). Bytes past the announced length are then parsed as what they are: a
// response nobody asked for, which drops the connection.
import type { Readable } from 'node:stream';
import type { OnReadOpts, Socket } from 'node:net';
import { READ_SIZE, takeReadBuffer, type ReadBuffer } from './read-buffers.ts';
import { UpstreamError } from './upstream-errors.ts';

/** What an exchange hears from its connection. The connection calls exactly one of onEnd/onFail, once. */
export interface ExchangeHandler {
  /** The final response's head; rawHeaders is Node's flat [name, value, ...] list. */
  onHead(status: number, rawHeaders: string[]): void;
  /**
   * A piece of the response body; false = the client is not reading, the connection pauses until resumed. With
   * `written`, the chunk lies in a read buffer: it goes to the client's write as its callback, and gives the buffer
   * back (the chunk must not be kept beyond that write).
   */
  onData(chunk: Buffer, written?: () => void): boolean;
  /** Called once per socket read that carried response bytes, after they were relayed. */
  onReadDone(): void;
  /** The response is complete. */
  onEnd(): void;
  /** The exchange failed; `retry` says whether the request may go again on a new connection. */
  onFail(error: Error, retry: Retry): void;
}

/**
 * 'unsent': no byte of the request was written (any method may go again). 'stale': the connection had served earlier
 * requests, the request (head and a body we still hold) went out and the server sent nothing back: it most likely
 * closed the idle connection as the request left, so an idempotent request may go again (nginx retries a failed
 * cached keep-alive connection the same way). 'no': it may not.
 */
export type Retry = 'no' | 'unsent' | 'stale';

/** What the connection needs from its pool. */
export interface ConnectionOwner {
  /** The exchange is over and the connection can serve the next one. */
  release(connection: UpstreamConnection): void;
  /** The socket closed: the connection is gone. */
  forget(connection: UpstreamConnection): void;
}

interface NativeParser {
  initialize(type: number, resource: object, maxHeaderSize?: number, lenient?: number): void;
  execute(data: Buffer): number | Error;
  finish(): number | Error | undefined;
  remove(): void;
  free(): void;
  close(): void;
  [callback: number]: unknown;
}
interface NativeParserClass {
  new (): NativeParser;
  RESPONSE: number;
  kOnMessageBegin: number;
  kOnHeaders: number;
  kOnHeadersComplete: number;
  kOnBody: number;
  kOnMessageComplete: number;
  kLenientNone: number;
}
// process.getBuiltinModule reaches node:http's parser from ESM and from the single executable alike.
const { HTTPParser } = process.getBuiltinModule('_http_common') as { HTTPParser: NativeParserClass };

/** One async resource for every parser: node:http passes one per request only for async_hooks, which we do not use. */
const PARSER_RESOURCE = {};
/** Response heads up to 16 KiB (node:http's default --max-http-header-size). */
const MAX_HEADER_SIZE = 16 * 1024;
const CRLF = '\r\n';
const LAST_CHUNK = '0\r\n\r\n';
/** llhttp's HPE_PAUSED: returned from on_headers_complete, it stops the parser right after the head. */
const HPE_PAUSED = 21;

export class UpstreamConnection {
  readonly socket: Socket;
  readonly #owner: ConnectionOwner;
  readonly #parser: NativeParser;
  /** The exchange now running, if any. */
  #handler: ExchangeHandler | undefined;
  /** The request head and body waiting for the socket to connect (or for the next turn of the event loop). */
  #head = '';
  #body: Buffer | Readable | null = null;
  #chunked = false;
  /** The body is a stream: once any of it was read, it cannot be sent again. */
  #streamed = false;
  #connecting = true;
  /** This connection already completed an exchange (so a failure without any answer may be a stale keep-alive). */
  #reused = false;
  /** The request went out (its head at least): an abort now costs the connection. */
  #written = false;
  #requestDone = false;
  #responseStarted = false;
  #informational = false;
  #skipBody = false;
  #keepAlive = true;
  #partialHeaders: string[] = [];
  /** The buffer the socket reads into now; `lent` once the client's write holds part of it (see read-buffers.ts). */
  #buffer: ReadBuffer | undefined;
  #lent = false;
  /** Bytes of a Content-Length body still to come that the connection relays itself (not llhttp). */
  #bodyLeft = 0;
  /** Timestamps (ms) read by the pool's sweep: no timer per request or connection. */
  connectDeadline = 0;
  lastIo = 0;
  pausedAt = 0;
  idleSince = 0;
  readTimeoutMs = 0;
  sendTimeoutMs = 0;

  /** `open` makes the socket with the given `onread` (net.connect / tls.connect options). */
  constructor(open: (onread: OnReadOpts) => Socket, owner: ConnectionOwner, connectTimeoutMs: number, secure: boolean) {
    const socket = open({ buffer: this.#nextBuffer, callback: this.#onRead });
    this.socket = socket;
    this.#owner = owner;
    this.connectDeadline = Date.now() + connectTimeoutMs;
    const parser = new HTTPParser();
    parser.initialize(HTTPParser.RESPONSE, PARSER_RESOURCE, MAX_HEADER_SIZE, HTTPParser.kLenientNone);
    parser[HTTPParser.kOnHeaders] = this.#onHeaders;
    parser[HTTPParser.kOnHeadersComplete] = this.#onHeadersComplete;
    parser[HTTPParser.kOnBody] = this.#onBody;
    parser[HTTPParser.kOnMessageComplete] = this.#onMessageComplete;
    parser[HTTPParser.kOnMessageBegin] = this.#onMessageBegin;
    this.#parser = parser;
    socket.setNoDelay(true);
    socket.on(secure ? 'secureConnect' : 'connect', this.#onConnect);
    socket.on('end', this.#onEnd);
    socket.on('error', this.#onError);
    socket.on('close', this.#onClose);
  }

  /** The running (or last) exchange's request went out, at least in part. */
  get written(): boolean {
    return this.#written;
  }

  get busy(): boolean {
    return this.#handler !== undefined;
  }

  /** Usable for a new exchange: connected (or connecting), not closed by either side. */
  get usable(): boolean {
    const s = this.socket;
    return !s.destroyed && s.writable && !s.readableEnded;
  }

  /**
   * Runs one exchange. `head` is the serialized request head; a Buffer body leaves with it in one write, a stream body
   * follows with backpressure (chunked framing when `chunked`). Nothing is written before the next turn of the event
   * loop, so a client that went away in the same read that brought its request (an HTTP/2 RST_STREAM right after the
   * HEADERS) cancels it before any byte reaches the upstream.
   */
  start(
    handler: ExchangeHandler,
    head: string,
    body: Buffer | Readable | null,
    chunked: boolean,
    timeouts: { readTimeoutMs: number; sendTimeoutMs: number },
  ): void {
    this.#handler = handler;
    this.#head = head;
    this.#body = body;
    this.#chunked = chunked;
    this.#streamed = body !== null && !Buffer.isBuffer(body);
    this.#written = false;
    this.#requestDone = false;
    this.#responseStarted = false;
    this.#informational = false;
    this.#skipBody = head.charCodeAt(0) === 72 /* H */ && head.startsWith('HEAD ');
    this.#keepAlive = true;
    this.readTimeoutMs = timeouts.readTimeoutMs;
    this.sendTimeoutMs = timeouts.sendTimeoutMs;
    this.pausedAt = 0;
    this.idleSince = 0;
    // read_timeout counts from now, not from the connection's last exchange.
    this.lastIo = Date.now();
    if (!this.#connecting) scheduleWrite(this);
  }

  /** Writes the request out; called from the write batch or on connect. */
  write(): void {
    if (this.#handler === undefined || this.#written || this.#connecting) return;
    const body = this.#body;
    if (body !== null && !Buffer.isBuffer(body) && body.errored) {
      // The client's body failed while the request waited for the socket: nothing of it goes out.
      this.abort(body.errored);
      return;
    }
    this.#written = true;
    this.lastIo = Date.now();
    const socket = this.socket;
    if (body === null) {
      socket.write(this.#head, 'latin1');
      this.#requestDone = true;
    } else if (Buffer.isBuffer(body)) {
      socket.cork();
      socket.write(this.#head, 'latin1');
      if (body.length > 0) socket.write(body);
      socket.uncork();
      this.#requestDone = true;
      this.#body = null;
    } else {
      // The head and whatever body the client already sent go out in one write.
      socket.cork();
      socket.write(this.#head, 'latin1');
      body.on('readable', this.#pumpBody);
      body.on('end', this.#onBodyEnd);
      body.on('error', this.#onBodyError);
      this.#pumpBody();
      socket.uncork();
    }
    this.#head = '';
  }

  /** Aborts the running exchange (its client went away): nothing is sent if nothing was yet, else the socket is cut. */
  abort(error: Error): void {
    const handler = this.#handler;
    if (handler === undefined) return;
    if (!this.#written && !this.#connecting) {
      // Still idle as far as the upstream knows: the connection goes back to the pool unharmed.
      this.#handler = undefined;
      this.#body = null;
      this.#head = '';
      handler.onFail(error, 'no');
      this.#owner.release(this);
      return;
    }
    this.#fail(error, 'no');
  }

  /** The client of the running exchange can take more of the response. */
  readonly resume = (): void => {
    if (this.pausedAt === 0) return;
    this.pausedAt = 0;
    this.lastIo = Date.now();
    // With `onread`, this only starts the handle reading again.
    this.socket.resume();
  };

  /** Checks the exchange's deadlines and the idle time; the pool calls it about once a second. */
  sweep(now: number, idleMs: number): void {
    if (this.#handler === undefined) {
      if (this.idleSince !== 0 && now - this.idleSince >= idleMs) this.socket.destroy();
      return;
    }
    if (this.#connecting) {
      if (now >= this.connectDeadline)
        this.#fail(new UpstreamError('ECONNECT_TIMEOUT', 'the upstream did not accept the connection in time'), 'no');
    } else if (this.pausedAt !== 0) {
      if (now - this.pausedAt >= this.sendTimeoutMs)
        this.#fail(new UpstreamError('ERR_SEND_TIMEOUT', 'the client did not read for send_timeout'), 'no');
    } else if (now - this.lastIo >= this.readTimeoutMs) {
      this.#fail(new UpstreamError('ERR_UPSTREAM_TIMEOUT', 'the upstream sent nothing for read_timeout'), 'no');
    }
  }

  destroy(): void {
    this.socket.destroy();
  }

  readonly #onConnect = (): void => {
    this.#connecting = false;
    this.write();
  };

  readonly #pumpBody = (): void => {
    const body = this.#body as Readable | null;
    if (body === null || this.#handler === undefined) return;
    const socket = this.socket;
    let chunk: Buffer | null;
    while ((chunk = body.read() as Buffer | null) !== null) {
      this.lastIo = Date.now();
      let more: boolean;
      if (this.#chunked) {
        socket.cork();
        socket.write(chunk.length.toString(16) + CRLF, 'latin1');
        socket.write(chunk);
        more = socket.write(CRLF, 'latin1');
        socket.uncork();
      } else more = socket.write(chunk);
      if (!more) {
        // The upstream reads slower than the client sends: stop reading the client until the socket drains.
        socket.once('drain', this.#pumpBody);
        return;
      }
    }
  };

  readonly #onBodyEnd = (): void => {
    // Only a body its client finished ends (client-abort.ts clientBody): only then does the last chunk go out.
    if (this.#chunked) this.socket.write(LAST_CHUNK, 'latin1');
    this.#detachBody();
    this.#requestDone = true;
    this.lastIo = Date.now();
  };

  readonly #onBodyError = (error: Error): void => {
    // The upstream must never see a body that did not arrive whole as a complete request: cut the socket mid-body.
    this.#fail(error, 'no');
  };

  #detachBody(): void {
    const body = this.#body as Readable | null;
    if (body === null || Buffer.isBuffer(body)) return;
    body.off('readable', this.#pumpBody).off('end', this.#onBodyEnd).off('error', this.#onBodyError);
    this.socket.off('drain', this.#pumpBody);
    this.#body = null;
  }

  /** net calls it after each read for the buffer of the next one: the same, unless the client's write holds it. */
  readonly #nextBuffer = (): Buffer => {
    if (this.#buffer === undefined || this.#lent) {
      this.#buffer = takeReadBuffer();
      this.#lent = false;
    }
    return this.#buffer.bytes;
  };

  /** One read of `nread` bytes into `bytes`; false stops reading until resume(). */
  readonly #onRead = (nread: number, bytes: Buffer): boolean => {
    let at = 0;
    while (at < nread && !this.socket.destroyed) {
      if (this.#bodyLeft > 0) {
        at = this.#relayBody(bytes, at, nread);
        continue;
      }
      const result = this.#parser.execute(at === 0 && nread === bytes.length ? bytes : bytes.subarray(at, nread));
      if (!(result instanceof Error)) break;
      const error = result as NodeJS.ErrnoException & { bytesParsed: number };
      if (error.code === 'HPE_PAUSED' && this.#bodyLeft > 0) {
        // The head ended here; the body that follows is the connection's to relay.
        at += error.bytesParsed;
        continue;
      }
      if (this.#handler === undefined) this.socket.destroy();
      else
        this.#fail(
          new UpstreamError(error.code ?? 'HPE_INVALID', `invalid response from the upstream: ${error.message}`),
          'no',
        );
      return false;
    }
    const handler = this.#handler;
    if (handler !== undefined) {
      this.lastIo = Date.now();
      handler.onReadDone();
    }
    return this.pausedAt === 0;
  };

  /** Relays the body bytes of this read from `at` on, up to the announced length; returns where they end. */
  #relayBody(bytes: Buffer, at: number, nread: number): number {
    const handler = this.#handler;
    const end = Math.min(nread, at + this.#bodyLeft);
    this.#bodyLeft -= end - at;
    if (handler !== undefined) {
      this.#lent = true;
      const chunk = at === 0 && end === bytes.length ? bytes : bytes.subarray(at, end);
      if (!handler.onData(chunk, this.#buffer!.release)) this.#pause();
    }
    if (this.#bodyLeft === 0) {
      // llhttp stopped after the head: it starts afresh for the next response (or for stray bytes after this one).
      this.#parser.initialize(HTTPParser.RESPONSE, PARSER_RESOURCE, MAX_HEADER_SIZE, HTTPParser.kLenientNone);
      this.#messageComplete();
    }
    return end;
  }

  /** The client reads slower than the upstream sends: reading stops after this read (the send_timeout runs). */
  #pause(): void {
    if (this.pausedAt === 0) this.pausedAt = Date.now();
  }

  readonly #onEnd = (): void => {
    // A close-delimited body ends here (finish() completes it); any other message cut short is an error.
    if (this.#handler !== undefined && this.#written) {
      if (this.#bodyLeft > 0 || this.#parser.finish() instanceof Error)
        this.#fail(closedError('the upstream closed the connection mid-response'), 'no');
    }
    this.#fail(closedError('the upstream closed the connection before answering'), this.#closedRetry());
    this.socket.destroy();
  };

  readonly #onError = (error: Error): void => {
    this.#fail(error, this.#connecting ? 'no' : this.#closedRetry());
  };

  readonly #onClose = (): void => {
    this.#fail(closedError('the upstream connection closed'), this.#closedRetry());
    this.#detachBody();
    // As node:http does (freeParser): the native parser is released once its stack has unwound.
    this.#parser.remove();
    this.#parser.close();
    // No read comes after the close: the buffer goes back unless a client's write still holds it.
    if (!this.#lent) this.#buffer?.release();
    this.#buffer = undefined;
    this.#owner.forget(this);
  };

  /** Whether a request on a connection the upstream closed may go again (see Retry). */
  #closedRetry(): Retry {
    if (this.#connecting) return 'no';
    if (!this.#written) return 'unsent';
    return this.#reused && !this.#responseStarted && !this.#streamed ? 'stale' : 'no';
  }

  #fail(error: Error, retry: Retry): void {
    const handler = this.#handler;
    if (handler === undefined) return;
    this.#handler = undefined;
    this.#detachBody();
    this.socket.destroy();
    handler.onFail(error, retry);
  }

  // llhttp callbacks (this = the connection: they are arrow functions bound once per connection).

  readonly #onMessageBegin = (): void => {
    if (this.#handler !== undefined && this.#written) {
      this.#responseStarted = true;
      return;
    }
    // Bytes nobody asked for (on an idle connection, after a complete response, or before the request went out):
    // they never reach a later request.
    if (this.#handler !== undefined) this.#fail(closedError('the upstream sent bytes nobody asked for'), 'unsent');
    this.socket.destroy();
  };

  readonly #onHeaders = (headers: string[]): void => {
    // A head split over several reads arrives in pieces before onHeadersComplete.
    for (let i = 0; i < headers.length; i++) this.#partialHeaders.push(headers[i]!);
  };

  readonly #onHeadersComplete = (
    _major: number,
    _minor: number,
    headers: string[] | undefined,
    _method: unknown,
    _url: unknown,
    status: number,
    _statusMessage: unknown,
    upgrade: boolean,
    shouldKeepAlive: boolean,
  ): number => {
    let raw = headers;
    if (this.#partialHeaders.length > 0) {
      raw = headers ? this.#partialHeaders.concat(headers) : this.#partialHeaders;
      this.#partialHeaders = [];
    }
    const handler = this.#handler;
    if (handler === undefined || !this.#written) {
      this.socket.destroy();
      return 1;
    }
    if (status === 101 || upgrade) {
      // This path never asks for an upgrade (WebSockets have their own): a switch nobody asked for is an invalid answer.
      this.#fail(new UpstreamError('ERR_UPSTREAM_PROTOCOL', `unexpected ${status} response with upgrade`), 'no');
      return 1;
    }
    if (status < 200) {
      // 100 Continue, 102, 103 Early Hints: interim, skipped (the client's own Expect is answered by Node).
      this.#informational = true;
      return 1;
    }
    this.#keepAlive = shouldKeepAlive;
    handler.onHead(status, raw ?? []);
    if (this.#skipBody) return 1;
    const length = status === 204 || status === 304 ? 0 : announcedLength(raw);
    if (length < READ_SIZE || this.#handler !== handler) return 0;
    this.#bodyLeft = length;
    return HPE_PAUSED;
  };

  readonly #onBody = (chunk: Buffer): void => {
    const handler = this.#handler;
    if (handler !== undefined && !handler.onData(chunk)) this.#pause();
  };

  readonly #onMessageComplete = (): void => {
    if (this.#informational) {
      this.#informational = false;
      return;
    }
    this.#messageComplete();
  };

  #messageComplete(): void {
    const handler = this.#handler;
    // Trailers (RFC 9112 §7.1.2) came in as headers: they are dropped, and never join the next response's head.
    if (this.#partialHeaders.length > 0) this.#partialHeaders = [];
    if (handler === undefined) return;
    this.#handler = undefined;
    this.#reused = true;
    // A last piece the client could not take at once paused reading; the response is whole now, so the connection reads
    // on (its next answer, or stray bytes and the close while idle) without waiting for that client's drain.
    this.pausedAt = 0;
    // Reused only when both sides say keep-alive and the whole request went out (an early answer leaves the upstream
    // reading a body we stop sending).
    if (this.#keepAlive && this.#requestDone) this.#owner.release(this);
    else {
      this.#detachBody();
      this.socket.destroy();
    }
    handler.onEnd();
  }
}

/**
 * The Content-Length of a head llhttp accepted, when it frames the body (no Transfer-Encoding); else 0. llhttp has
 * already refused a malformed value, two of them, and one beside Transfer-Encoding.
 */
function announcedLength(raw: string[] | undefined): number {
  if (raw === undefined) return 0;
  let length = 0;
  for (let i = 0; i < raw.length; i += 2) {
    const name = raw[i]!;
    if (name.length === 17 && name.toLowerCase() === 'transfer-encoding') return 0;
    if (name.length === 14 && name.toLowerCase() === 'content-length') length = Number(raw[i + 1]);
  }
  return Number.isSafeInteger(length) ? length : 0;
}

function closedError(message: string): Error {
  return new UpstreamError('ECONNRESET', message);
}

// The write batch: exchanges started during this turn of the event loop are written in the next one, all together
// under one setImmediate (not one per request).
let batch: UpstreamConnection[] = [];
let batchScheduled = false;
function scheduleWrite(connection: UpstreamConnection): void {
  batch.push(connection);
  if (!batchScheduled) {
    batchScheduled = true;
    setImmediate(flushWrites);
  }
}
function flushWrites(): void {
  const connections = batch;
  batch = [];
  batchScheduled = false;
  for (const connection of connections) connection.write();
}

// The open WebSocket tunnels of this process by session, so that the end of a session (sign-out, front-channel
// logout, expiry, a refresh the provider refuses) ends its WebSockets at once: a tunnel outlives the request that
// opened it, and nothing looks at its session again. Both sides get a close frame 1008 "policy violation"
// (RFC 6455 §7.4.1), then the connection ends. The frame must fall between two frames of the stream: each direction's
// frame headers are followed as they pass (RFC 6455 §5.2: lengths only, no payload is read), and a frame under way is
// let through to its end first.
import crypto from 'node:crypto';
import type { Socket } from 'node:net';

export const SESSION_ENDED_CLOSE_CODE = 1008;
const CLOSE_REASON = 'session ended';
/** How long a frame under way may take to finish; then, and once the close frames are out, both sockets are destroyed. */
const CLOSE_GRACE_MS = 2_000;
/** setTimeout's limit (about 24.8 days); a later expiry is reached in steps. */
const MAX_TIMER_MS = 2 ** 31 - 1;

export class WebSocketTunnels {
  readonly #bySession = new Map<string, Set<Tunnel>>();

  /** A tunnel a session opened: it ends with the session (end(sessionKey)), and at the latest at expiresAt. */
  add(sessionKey: string, expiresAt: number, client: Socket, upstream: Socket): void {
    const tunnel = new Tunnel(client, upstream);
    let tunnels = this.#bySession.get(sessionKey);
    if (!tunnels) this.#bySession.set(sessionKey, (tunnels = new Set()));
    tunnels.add(tunnel);
    let timer: NodeJS.Timeout;
    const arm = () => {
      timer = setTimeout(expire, Math.min(Math.max(0, expiresAt - Date.now()), MAX_TIMER_MS)).unref();
    };
    const expire = () => {
      if (Date.now() >= expiresAt) tunnel.close();
      else arm();
    };
    arm();
    tunnel.whenClosed(() => {
      clearTimeout(timer);
      tunnels.delete(tunnel);
      if (tunnels.size === 0 && this.#bySession.get(sessionKey) === tunnels) this.#bySession.delete(sessionKey);
    });
  }

  /** Closes every open tunnel of the session; returns how many. */
  end(sessionKey: string): number {
    const tunnels = this.#bySession.get(sessionKey);
    if (!tunnels) return 0;
    this.#bySession.delete(sessionKey);
    for (const tunnel of tunnels) tunnel.close();
    return tunnels.size;
  }

  /** Open tunnels that belong to a session. */
  get size(): number {
    let count = 0;
    for (const tunnels of this.#bySession.values()) count += tunnels.size;
    return count;
  }
}

class Tunnel {
  readonly #toClient: Direction;
  readonly #toUpstream: Direction;
  readonly #client: Socket;
  readonly #upstream: Socket;
  #closing = false;

  constructor(client: Socket, upstream: Socket) {
    this.#client = client;
    this.#upstream = upstream;
    this.#toClient = new Direction(upstream, client);
    this.#toUpstream = new Direction(client, upstream);
  }

  whenClosed(listener: () => void): void {
    let called = false;
    const once = () => {
      if (!called) {
        called = true;
        listener();
      }
    };
    this.#client.once('close', once);
    this.#upstream.once('close', once);
  }

  close(): void {
    if (this.#closing) return;
    this.#closing = true;
    setTimeout(() => {
      this.#client.destroy();
      this.#upstream.destroy();
    }, CLOSE_GRACE_MS).unref();
    // Frames from a server are not masked, frames to a server must be (RFC 6455 §5.1).
    this.#toClient.stopAtFrameEnd(() => {
      if (this.#client.writable) this.#client.end(closeFrame(false));
    });
    this.#toUpstream.stopAtFrameEnd(() => {
      if (this.#upstream.writable) this.#upstream.end(closeFrame(true));
    });
  }
}

/** One direction of a tunnel: the frames that source's pipe hands to dest, followed header by header. */
class Direction {
  readonly #source: Socket;
  readonly #dest: Socket;
  readonly #header = Buffer.alloc(14);
  #headerBytes = 0;
  #payloadLeft = 0;
  /** relay: the pipe forwards, this only follows; finishing: the rest of the frame under way is forwarded here;
   *  stopped: what still arrives is dropped (the peer's own close frame, say). */
  #state: 'relay' | 'finishing' | 'stopped' = 'relay';
  #atFrameEnd: () => void = () => {};

  constructor(source: Socket, dest: Socket) {
    this.#source = source;
    this.#dest = dest;
    source.on('data', (chunk: Buffer) => this.#onData(chunk));
  }

  /** Stops forwarding at the end of the frame under way (at once between frames), then calls atFrameEnd. */
  stopAtFrameEnd(atFrameEnd: () => void): void {
    this.#source.unpipe(this.#dest);
    this.#atFrameEnd = atFrameEnd;
    this.#state = 'finishing';
    if (this.#betweenFrames) this.#stop();
    this.#source.resume();
  }

  get #betweenFrames(): boolean {
    return this.#headerBytes === 0 && this.#payloadLeft === 0;
  }

  #onData(chunk: Buffer): void {
    if (this.#state === 'relay') this.#follow(chunk, false);
    else if (this.#state === 'finishing') {
      const through = this.#follow(chunk, true);
      if (through > 0) this.#dest.write(chunk.subarray(0, through));
      if (this.#betweenFrames) this.#stop();
    }
  }

  #stop(): void {
    this.#state = 'stopped';
    this.#atFrameEnd();
  }

  /** Goes through chunk's bytes, frame by frame; with toFrameEnd, only to the end of the frame under way. Returns how
   *  many bytes it went through. */
  #follow(chunk: Buffer, toFrameEnd: boolean): number {
    let at = 0;
    while (at < chunk.length && !(toFrameEnd && this.#betweenFrames)) {
      if (this.#payloadLeft > 0) {
        const n = Math.min(this.#payloadLeft, chunk.length - at);
        this.#payloadLeft -= n;
        at += n;
        continue;
      }
      this.#header[this.#headerBytes++] = chunk[at++]!;
      if (this.#headerBytes === headerSize(this.#header, this.#headerBytes)) {
        this.#payloadLeft = payloadLength(this.#header);
        this.#headerBytes = 0;
      }
    }
    return at;
  }
}

/** The size of a frame header (RFC 6455 §5.2): 2 bytes, then a 16- or 64-bit length, then a 4-byte mask key. */
function headerSize(header: Buffer, have: number): number {
  if (have < 2) return 2;
  const length = header[1]! & 0x7f;
  return 2 + (length === 126 ? 2 : length === 127 ? 8 : 0) + (header[1]! & 0x80 ? 4 : 0);
}

function payloadLength(header: Buffer): number {
  const length = header[1]! & 0x7f;
  if (length === 126) return header.readUInt16BE(2);
  if (length === 127) return Number(header.readBigUInt64BE(2));
  return length;
}

/** A close frame with code 1008 and a short reason (RFC 6455 §5.5.1), masked for the server side. */
function closeFrame(masked: boolean): Buffer {
  const payload = Buffer.alloc(2 + Buffer.byteLength(CLOSE_REASON));
  payload.writeUInt16BE(SESSION_ENDED_CLOSE_CODE);
  payload.write(CLOSE_REASON, 2);
  if (!masked) return Buffer.concat([Buffer.from([0x88, payload.length]), payload]);
  const mask = crypto.randomBytes(4);
  for (let i = 0; i < payload.length; i++) payload[i]! ^= mask[i % 4]!;
  return Buffer.concat([Buffer.from([0x88, 0x80 | payload.length]), mask, payload]);
}

// A bare HTTP/2 client over real TLS that writes frames itself, for what node:http2's client never does: open more
// streams than the server allows (it would queue them). RFC 9113 §4.1 (frames), RFC 7541 (HPACK: static table
// entries and literals without indexing only, so there is no dynamic table to keep).
import tls from 'node:tls';
import { WAIT_MS } from './wait.ts';

export interface Frame {
  type: number;
  flags: number;
  stream: number;
  payload: Buffer;
}

export const FRAME = { DATA: 0x0, HEADERS: 0x1, RST_STREAM: 0x3, SETTINGS: 0x4, GOAWAY: 0x7 } as const;
const END_STREAM = 0x1;
const END_HEADERS = 0x4;
const PREFACE = Buffer.from('PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n');

export function frame(type: number, flags: number, stream: number, payload: Buffer = Buffer.alloc(0)): Buffer {
  const header = Buffer.alloc(9);
  header.writeUIntBE(payload.length, 0, 3);
  header[3] = type;
  header[4] = flags;
  header.writeUInt32BE(stream, 5);
  return Buffer.concat([header, payload]);
}

/** A GET request's HEADERS frame: :method GET, :scheme https, :path /, :authority <authority>. */
export function getHeaders(stream: number, authority: string): Buffer {
  const name = Buffer.from(authority);
  // 0x82 :method GET, 0x87 :scheme https, 0x84 :path /, 0x01 = literal without indexing, name :authority (index 1).
  const block = Buffer.concat([Buffer.from([0x82, 0x87, 0x84, 0x01, name.length]), name]);
  return frame(FRAME.HEADERS, END_STREAM | END_HEADERS, stream, block);
}

/** RST_STREAM with an error code (RFC 9113 §6.4). */
export function rstStream(stream: number, code: number): Buffer {
  const payload = Buffer.alloc(4);
  payload.writeUInt32BE(code);
  return frame(FRAME.RST_STREAM, 0, stream, payload);
}

export interface RawSession {
  socket: tls.TLSSocket;
  frames: Frame[];
  /** Resolves with the first frame (seen so far or later) that matches, or rejects after `ms`. */
  until(matches: (frame: Frame) => boolean, what: string, ms?: number): Promise<Frame>;
  send(...frames: Buffer[]): void;
  close(): void;
}

/** Connects with ALPN h2 and sends the connection preface with an empty SETTINGS frame (it never acknowledges the server's). */
export async function rawSession(port: number, options: { ca: string; servername: string }): Promise<RawSession> {
  const socket = tls.connect({
    host: '127.0.0.1',
    port,
    ca: options.ca,
    servername: options.servername,
    ALPNProtocols: ['h2'],
  });
  await new Promise<void>((resolve, reject) => socket.once('secureConnect', resolve).once('error', reject));
  if (socket.alpnProtocol !== 'h2') throw new Error(`ALPN chose ${String(socket.alpnProtocol)}, not h2`);
  socket.on('error', () => {});
  const frames: Frame[] = [];
  const waiters = new Set<(frame: Frame) => void>();
  let buffer = Buffer.alloc(0);
  socket.on('data', (data: Buffer) => {
    buffer = Buffer.concat([buffer, data]);
    while (buffer.length >= 9 && buffer.length >= 9 + buffer.readUIntBE(0, 3)) {
      const length = buffer.readUIntBE(0, 3);
      const received = {
        type: buffer[3]!,
        flags: buffer[4]!,
        stream: buffer.readUInt32BE(5) & 0x7fffffff,
        payload: buffer.subarray(9, 9 + length),
      };
      buffer = buffer.subarray(9 + length);
      frames.push(received);
      for (const waiter of waiters) waiter(received);
    }
  });
  socket.write(Buffer.concat([PREFACE, frame(FRAME.SETTINGS, 0, 0)]));
  return {
    socket,
    frames,
    send: (...out) => {
      socket.write(Buffer.concat(out));
    },
    close: () => socket.destroy(),
    until: (matches, what, ms = WAIT_MS) => {
      const found = frames.find(matches);
      if (found) return Promise.resolve(found);
      return new Promise((resolve, reject) => {
        const timer = setTimeout(() => {
          waiters.delete(check);
          reject(new Error(`${what}: no such frame after ${ms} ms`));
        }, ms);
        const check = (received: Frame) => {
          if (matches(received)) {
            clearTimeout(timer);
            waiters.delete(check);
            resolve(received);
          }
        };
        waiters.add(check);
      });
    },
  };
}

/** The parameters of a SETTINGS frame (RFC 9113 §6.5.1), by identifier. */
export function settingsOf(frame: Frame): Map<number, number> {
  const settings = new Map<number, number>();
  for (let at = 0; at + 6 <= frame.payload.length; at += 6)
    settings.set(frame.payload.readUInt16BE(at), frame.payload.readUInt32BE(at + 2));
  return settings;
}

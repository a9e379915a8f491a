// The buffers upstream sockets read into (net's `onread` option): taken from a free list and given back once the
// client's write of the bytes they carry has completed, so relaying a body allocates nothing per read. A fresh Buffer
// per read (what a socket's 'data' events and llhttp's body callback each make) is external memory, and V8 answers
// external memory with full mark-compact collections: most of the CPU of a large download went there.
// https://nodejs.org/api/net.html#socketconnectoptions-connectlistener (onread)

/**
 * One read: up to 256 KiB. Node's own sockets read 64 KiB at a time; an upstream streaming a large body fills that
 * every time, and each read costs a relay and a TLS write to the client. Measured on the 1 MB download (same run):
 * 64 KiB 1,689 µs/MB, 256 KiB 1,330 µs/MB, for ≈ 9 MB more peak RSS.
 */
export const READ_SIZE = 256 * 1024;
/** Free buffers kept for reuse (8 MiB); beyond that a returned buffer is left to the garbage collector. */
const MAX_FREE = 32;

export class ReadBuffer {
  readonly bytes = Buffer.allocUnsafeSlow(READ_SIZE);
  /** The write callback that gives the buffer back: bound once, so a write costs no closure. */
  readonly release = (): void => {
    if (free.length < MAX_FREE) free.push(this);
  };
}

const free: ReadBuffer[] = [];

export function takeReadBuffer(): ReadBuffer {
  return free.pop() ?? new ReadBuffer();
}

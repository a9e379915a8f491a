// Free ports and a tiny DNS responder for tests.
import dgram from 'node:dgram';
import net from 'node:net';

/** A free TCP port on 127.0.0.1 (tiny race between close and reuse; fine for tests). */
export async function freePort(): Promise<number> {
  const server = net.createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as net.AddressInfo;
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}

/** Minimal authoritative DNS over UDP: A queries → answer(name) (null: no answer); anything else → NOERROR, empty. */
export async function startDns(port: number, answer: (name: string) => string | null): Promise<dgram.Socket> {
  const socket = dgram.createSocket('udp4');
  socket.on('message', (msg, rinfo) => {
    if (msg.length < 12) return;
    let off = 12;
    const labels: string[] = [];
    while (off < msg.length && msg[off] !== 0) {
      const len = msg[off]!;
      labels.push(msg.subarray(off + 1, off + 1 + len).toString());
      off += len + 1;
    }
    off += 1;
    const qtype = msg.readUInt16BE(off);
    off += 4;
    const ip = qtype === 1 ? answer(labels.join('.').toLowerCase()) : null;
    const header = Buffer.alloc(12);
    msg.copy(header, 0, 0, 2);
    header.writeUInt16BE(0x8400 | (msg.readUInt16BE(2) & 0x0100), 2); // QR + AA (+ RD)
    header.writeUInt16BE(1, 4);
    header.writeUInt16BE(ip ? 1 : 0, 6);
    const parts = [header, msg.subarray(12, off)];
    if (ip) {
      const rr = Buffer.alloc(16);
      rr.writeUInt16BE(0xc00c, 0);
      rr.writeUInt16BE(1, 2);
      rr.writeUInt16BE(1, 4);
      rr.writeUInt32BE(0, 6);
      rr.writeUInt16BE(4, 10);
      ip.split('.').forEach((b, i) => rr.writeUInt8(Number(b), 12 + i));
      parts.push(rr);
    }
    socket.send(Buffer.concat(parts), rinfo.port, rinfo.address);
  });
  await new Promise<void>((resolve) => socket.bind(port, '127.0.0.1', () => resolve()));
  return socket;
}

// The PROXY protocol header (v1 text and v2 binary, https://www.haproxy.org/download/2.8/doc/proxy-protocol.txt) that
// an L4 balancer (HAProxy send-proxy / send-proxy-v2, AWS NLB, …) puts before the client's bytes, so Gatehouse learns
// the client address. Read before TLS or HTTP, with a bound on size and time, from trusted balancers only; anything
// malformed closes the connection (the spec: a receiver must not guess, and must not accept a connection without it).
import net, { type Socket } from 'node:net';

/** The connection's client, as the balancer saw it; undefined = use the socket's own peer (v2 LOCAL, v1 UNKNOWN). */
export interface ProxyHeader {
  source?: { address: string; port: number };
}

/** "PROXY TCP6 ffff:…:ffff ffff:…:ffff 65535 65535\r\n" is 104 bytes; the spec's bound is 107. */
const V1_MAX = 107;
const V2_SIGNATURE = Buffer.from([0x0d, 0x0a, 0x0d, 0x0a, 0x00, 0x0d, 0x0a, 0x51, 0x55, 0x49, 0x54, 0x0a]);
const V1_PREFIX = Buffer.from('PROXY ');
const V2_FIXED = 16;

type Parsed = { more: true } | { error: string } | { header: ProxyHeader; length: number };

/** Parses the start of a connection: the header and its length, "more" while it is incomplete, or why it is refused. */
export function parseProxyHeader(data: Buffer): Parsed {
  const v1 = startsAs(data, V1_PREFIX);
  const v2 = startsAs(data, V2_SIGNATURE);
  if (!v1 && !v2) return { error: 'the connection does not start with a PROXY protocol header' };
  if (v1) return parseV1(data);
  if (data.length < V2_FIXED) return { more: true };
  return parseV2(data);
}

/** Whether data is, as far as it goes, the start of `prefix` (or holds it whole). */
function startsAs(data: Buffer, prefix: Buffer): boolean {
  const n = Math.min(data.length, prefix.length);
  return data.subarray(0, n).equals(prefix.subarray(0, n));
}

function parseV1(data: Buffer): Parsed {
  const end = data.indexOf('\r\n');
  if (end < 0) return data.length >= V1_MAX ? { error: 'v1 header longer than 107 bytes' } : { more: true };
  if (end + 2 > V1_MAX) return { error: 'v1 header longer than 107 bytes' };
  const line = data.subarray(0, end).toString('latin1');
  const parts = line.split(' ');
  if (parts[1] === 'UNKNOWN') return { header: {}, length: end + 2 };
  const [, family, source, destination, sourcePort, destinationPort, ...extra] = parts;
  const isFamily = family === 'TCP4' ? net.isIPv4 : family === 'TCP6' ? net.isIPv6 : undefined;
  if (!isFamily || extra.length > 0) return { error: `malformed v1 header "${printable(line)}"` };
  if (!isFamily(source ?? '') || !isFamily(destination ?? '') || !isPort(sourcePort) || !isPort(destinationPort))
    return { error: `malformed v1 header "${printable(line)}"` };
  return { header: { source: { address: source!, port: Number(sourcePort) } }, length: end + 2 };
}

function parseV2(data: Buffer): Parsed {
  const versionCommand = data[12]!;
  if (versionCommand >> 4 !== 2) return { error: `v2 header with version ${versionCommand >> 4}` };
  const command = versionCommand & 0x0f;
  if (command > 1) return { error: `v2 header with unknown command ${command}` };
  const length = V2_FIXED + data.readUInt16BE(14);
  if (data.length < length) return { more: true };
  // LOCAL: the balancer's own connection (its health checks); the addresses are its own endpoints.
  if (command === 0) return { header: {}, length };
  const family = data[13]! >> 4;
  const transport = data[13]! & 0x0f;
  // AF_UNSPEC (and AF_UNIX, which has no client address for us): use the connection's own endpoints.
  if (family === 0 || family === 3) return { header: {}, length };
  if (transport !== 1) return { error: `v2 header for transport ${transport}, not a stream` };
  const body = data.subarray(V2_FIXED, length);
  if (family === 1) {
    if (body.length < 12) return { error: 'v2 IPv4 header shorter than its addresses' };
    return { header: { source: { address: [...body.subarray(0, 4)].join('.'), port: body.readUInt16BE(8) } }, length };
  }
  if (family === 2) {
    if (body.length < 36) return { error: 'v2 IPv6 header shorter than its addresses' };
    const groups = Array.from({ length: 8 }, (_, i) => body.readUInt16BE(i * 2).toString(16));
    const address = new net.SocketAddress({ address: groups.join(':'), family: 'ipv6' }).address;
    return { header: { source: { address: mappedIpv4(address), port: body.readUInt16BE(32) } }, length };
  }
  return { error: `v2 header with unknown address family ${family}` };
}

function isPort(text: string | undefined): boolean {
  return text !== undefined && /^(0|[1-9]\d{0,4})$/.test(text) && Number(text) <= 65535;
}

/** "::ffff:10.0.0.1" as "10.0.0.1", as Node names an IPv4 peer of an IPv6 socket elsewhere in the logs' eyes. */
function mappedIpv4(address: string): string {
  return address.startsWith('::ffff:') && net.isIPv4(address.slice(7)) ? address.slice(7) : address;
}

function printable(text: string): string {
  return text.replace(/[^\x20-\x7e]/g, '?').slice(0, V1_MAX);
}

/**
 * Reads the header from a fresh connection, leaving every byte after it in the socket for TLS or HTTP. Rejects when
 * the header is malformed, or incomplete after timeoutMs, or the connection ends first.
 */
export function readProxyHeader(socket: Socket, timeoutMs: number): Promise<ProxyHeader> {
  return new Promise((resolve, reject) => {
    let data: Buffer = Buffer.alloc(0);
    const finish = (error: Error | undefined, header?: ProxyHeader, rest?: Buffer) => {
      clearTimeout(timer);
      socket.off('data', onData);
      socket.off('end', onEnd);
      socket.off('error', onEnd);
      socket.off('close', onEnd);
      socket.pause();
      if (error) return reject(error);
      if (rest && rest.length > 0) socket.unshift(rest);
      resolve(header!);
    };
    const onData = (chunk: Buffer) => {
      data = data.length === 0 ? chunk : Buffer.concat([data, chunk]);
      const parsed = parseProxyHeader(data);
      if ('more' in parsed) return;
      if ('error' in parsed) return finish(new Error(parsed.error));
      finish(undefined, parsed.header, data.subarray(parsed.length));
    };
    const onEnd = () => finish(new Error('the connection ended before its PROXY protocol header'));
    const timer = setTimeout(
      () => finish(new Error(`no complete PROXY protocol header within ${timeoutMs} ms`)),
      timeoutMs,
    );
    socket.on('data', onData);
    socket.once('end', onEnd);
    socket.once('error', onEnd);
    socket.once('close', onEnd);
  });
}

// Which peers may tell us who the client is (X-Forwarded-For and friends). Everyone else's claims are replaced:
// trusting them by default is oauth2-proxy's GHSA-7rh7-c77v-6434 and Caddy's pre-2.5 behaviour.
import net from 'node:net';

export class TrustedProxies {
  private readonly list = new net.BlockList();
  readonly empty: boolean;

  constructor(ranges: readonly string[]) {
    for (const range of ranges) {
      const [address, bits] = range.split('/') as [string, string | undefined];
      const type = net.isIP(address) === 6 ? 'ipv6' : 'ipv4';
      if (bits === undefined) this.list.addAddress(address, type);
      else this.list.addSubnet(address, Number(bits), type);
    }
    this.empty = ranges.length === 0;
  }

  has(address: string | undefined): boolean {
    if (this.empty || !address) return false;
    const plain = address.startsWith('::ffff:') && net.isIPv4(address.slice(7)) ? address.slice(7) : address;
    return this.list.check(plain, net.isIPv6(plain) ? 'ipv6' : 'ipv4');
  }

  /** The client address: the peer, or, behind trusted proxies, the right-most X-Forwarded-For entry that is not one of them. */
  clientAddress(peer: string, forwardedFor: string | undefined): string {
    if (!this.has(peer) || !forwardedFor) return peer;
    const hops = forwardedFor
      .split(',')
      .map((h) => h.trim())
      .filter(Boolean);
    for (let i = hops.length - 1; i >= 0; i--) if (!this.has(hops[i])) return hops[i]!;
    return hops[0] ?? peer;
  }
}

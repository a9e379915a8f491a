/**
 * Hop-by-hop headers: they describe one connection and are never forwarded (RFC 9110 §7.6.1, RFC 9113 §8.2.2).
 * Expect is answered by Node itself (100 Continue), so the upstream must not answer it again. TE goes too,
 * `trailers` included (as nginx does): Gatehouse does not pass response trailers on, so it must not promise the
 * upstream it accepts them.
 */
export const HOP_BY_HOP: ReadonlySet<string> = new Set([
  'expect',
  'connection',
  'keep-alive',
  'proxy-connection',
  'transfer-encoding',
  'te',
  'trailer',
  'upgrade',
  'proxy-authorization',
  'proxy-authenticate',
  'http2-settings',
]);

// The PROXY protocol reader (v1 text, v2 binary; https://www.haproxy.org/download/2.8/doc/proxy-protocol.txt):
// headers as HAProxy writes them, incomplete ones waited for, and malformed ones refused.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { parseProxyHeader } from '../../../src/http/proxy-protocol.ts';

const SIGNATURE = Buffer.from('0d0a0d0a000d0a515549540a', 'hex');

function v2(versionCommand: number, familyTransport: number, body: Buffer): Buffer {
  const fixed = Buffer.alloc(4);
  fixed[0] = versionCommand;
  fixed[1] = familyTransport;
  fixed.writeUInt16BE(body.length, 2);
  return Buffer.concat([SIGNATURE, fixed, body]);
}

const inet = Buffer.from([10, 1, 2, 3, 192, 0, 2, 1, 0x30, 0x39, 0x01, 0xbb]);
const inet6 = Buffer.concat([
  Buffer.from('20010db8000000000000000000000001', 'hex'),
  Buffer.from('20010db8000000000000000000000002', 'hex'),
  Buffer.from([0x30, 0x39, 0x01, 0xbb]),
]);

test('v1: TCP4, TCP6 and UNKNOWN; the header length leaves what follows for TLS/HTTP', () => {
  const tcp4 = Buffer.from('PROXY TCP4 10.1.2.3 192.0.2.1 12345 443\r\n\x16\x03\x01');
  assert.deepEqual(parseProxyHeader(tcp4), {
    header: { source: { address: '10.1.2.3', port: 12345 } },
    length: tcp4.length - 3,
  });
  assert.deepEqual(parseProxyHeader(Buffer.from('PROXY TCP6 2001:db8::1 2001:db8::2 65535 443\r\n')), {
    header: { source: { address: '2001:db8::1', port: 65535 } },
    length: 46,
  });
  assert.deepEqual(parseProxyHeader(Buffer.from('PROXY UNKNOWN ignored stuff\r\n')), { header: {}, length: 29 });
  assert.deepEqual(parseProxyHeader(Buffer.from('PROXY TCP4 10.1.2.3 ')), { more: true });
  assert.deepEqual(parseProxyHeader(Buffer.from('PRO')), { more: true });
});

test('v2: PROXY over IPv4 and IPv6 (TLVs after the addresses allowed), LOCAL and UNSPEC use the socket peer', () => {
  const withTlv = v2(0x21, 0x11, Buffer.concat([inet, Buffer.from([0x05, 0x00, 0x02, 0xab, 0xcd])]));
  assert.deepEqual(parseProxyHeader(Buffer.concat([withTlv, Buffer.from('GET')])), {
    header: { source: { address: '10.1.2.3', port: 12345 } },
    length: withTlv.length,
  });
  assert.deepEqual(parseProxyHeader(v2(0x21, 0x21, inet6)), {
    header: { source: { address: '2001:db8::1', port: 12345 } },
    length: 16 + 36,
  });
  assert.deepEqual(parseProxyHeader(v2(0x20, 0x00, Buffer.alloc(0))), { header: {}, length: 16 });
  assert.deepEqual(parseProxyHeader(v2(0x21, 0x00, Buffer.alloc(0))), { header: {}, length: 16 });
  const whole = v2(0x21, 0x11, inet);
  for (const cut of [5, 12, 15, 16, whole.length - 1])
    assert.deepEqual(parseProxyHeader(whole.subarray(0, cut)), { more: true }, `cut at ${cut}`);
});

test('malformed headers are refused with the reason', () => {
  const refused = (data: Buffer | string) => {
    const parsed = parseProxyHeader(Buffer.from(data));
    assert.ok('error' in parsed, `accepted: ${JSON.stringify(String(data))}`);
    return parsed.error;
  };
  assert.match(refused('GET / HTTP/1.1\r\n'), /does not start with a PROXY protocol header/);
  assert.match(refused('\x16\x03\x01\x02\x00'), /does not start/);
  assert.match(refused(`PROXY TCP4 ${'1'.repeat(120)}`), /longer than 107/);
  assert.match(refused(`PROXY TCP4 1.2.3.4 5.6.7.8 1 2 ${'x'.repeat(90)}\r\n`), /longer than 107/);
  assert.match(refused('PROXY TCP4 1.2.3.999 5.6.7.8 1 2\r\n'), /malformed v1/);
  assert.match(refused('PROXY TCP4 2001:db8::1 5.6.7.8 1 2\r\n'), /malformed v1/);
  assert.match(refused('PROXY TCP4 1.2.3.4 5.6.7.8 65536 2\r\n'), /malformed v1/);
  assert.match(refused('PROXY TCP4 1.2.3.4 5.6.7.8 01 2\r\n'), /malformed v1/);
  assert.match(refused('PROXY TCP4 1.2.3.4 5.6.7.8 1 2 3\r\n'), /malformed v1/);
  assert.match(refused('PROXY UDP4 1.2.3.4 5.6.7.8 1 2\r\n'), /malformed v1/);
  assert.match(refused('PROXY TCP4  1.2.3.4 5.6.7.8 1 2\r\n'), /malformed v1/);
  assert.match(refused(v2(0x31, 0x11, inet)), /version 3/);
  assert.match(refused(v2(0x22, 0x11, inet)), /unknown command 2/);
  assert.match(refused(v2(0x21, 0x12, inet)), /transport 2/);
  assert.match(refused(v2(0x21, 0x11, inet.subarray(0, 8))), /shorter than its addresses/);
  assert.match(refused(v2(0x21, 0x21, inet)), /shorter than its addresses/);
  assert.match(refused(v2(0x21, 0x41, inet)), /unknown address family 4/);
  // A signature that goes wrong part-way.
  assert.match(refused(Buffer.concat([SIGNATURE.subarray(0, 6), Buffer.from('x')])), /does not start/);
});

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { serializeRequestHead } from '../../../src/proxy/request-head.ts';

test('the request head: one string, framing header from the body, the client length replaced', () => {
  assert.equal(
    serializeRequestHead('GET', '/a?b=1', { host: 'app.test', cookie: ['a=1', 'b=2'] }, { kind: 'none' }),
    'GET /a?b=1 HTTP/1.1\r\nhost: app.test\r\ncookie: a=1\r\ncookie: b=2\r\n\r\n',
  );
  assert.equal(
    serializeRequestHead('POST', '/', { host: 'h', 'content-length': '99' }, { kind: 'length', length: 4 }),
    'POST / HTTP/1.1\r\nhost: h\r\ncontent-length: 4\r\n\r\n',
  );
  assert.equal(
    serializeRequestHead('PUT', '/', { host: 'h' }, { kind: 'chunked' }),
    'PUT / HTTP/1.1\r\nhost: h\r\ntransfer-encoding: chunked\r\n\r\n',
  );
  // RFC 9110 §8.6: a POST without content still says so.
  assert.equal(
    serializeRequestHead('POST', '/', { host: 'h' }, { kind: 'none' }),
    'POST / HTTP/1.1\r\nhost: h\r\ncontent-length: 0\r\n\r\n',
  );
});

test('a value with CR, LF or NUL, a method that is no token, or a target with a space is refused (header injection)', () => {
  for (const [method, path, value] of [
    ['GET', '/', 'x\r\nx-injected: 1'],
    ['GET', '/', 'x\nx'],
    ['GET', '/', 'x\0'],
    ['GET /x HTTP/1.1\r\n', '/', 'ok'],
    ['GET', '/a b', 'ok'],
    ['GET', '/a\r\nb', 'ok'],
  ])
    assert.throws(
      () => serializeRequestHead(method!, path!, { 'x-user': value! }, { kind: 'none' }),
      (error: NodeJS.ErrnoException) => error.code === 'ERR_INVALID_REQUEST_HEAD',
      JSON.stringify([method, path, value]),
    );
  // obs-text (bytes 0x80-0xFF, as Node's parser hands them over) passes as it came.
  assert.match(serializeRequestHead('GET', '/', { 'x-name': 'caf\u00e9' }, { kind: 'none' }), /x-name: café\r\n/);
});

import assert from 'node:assert/strict';
import { test } from 'node:test';
import { parseDurationMs, parseSizeBytes } from '../../src/config/units.ts';
import { normalizeHost, NameIndex } from '../../src/tls/name-index.ts';
import { normalizePath } from '../../src/http/normalize-path.ts';

test('durations in nginx and oauth2-proxy notation', () => {
  assert.equal(parseDurationMs('90s'), 90_000);
  assert.equal(parseDurationMs(90), 90_000);
  assert.equal(parseDurationMs('1m30s'), 90_000);
  assert.equal(parseDurationMs('168h'), 604_800_000);
  assert.equal(parseDurationMs('250ms'), 250);
  for (const bad of ['', 'soon', '10 s', '5x', '-1s', 's']) assert.equal(parseDurationMs(bad), undefined, bad);
});

test('sizes in nginx notation', () => {
  assert.equal(parseSizeBytes('10m'), 10_485_760);
  assert.equal(parseSizeBytes('128k'), 131_072);
  assert.equal(parseSizeBytes('1G'), 1_073_741_824);
  assert.equal(parseSizeBytes(512), 512);
  for (const bad of ['', 'big', '1.5m', '-1']) assert.equal(parseSizeBytes(bad), undefined, bad);
});

test('host names are normalized and matched exactly or by a one-label wildcard', () => {
  assert.equal(normalizeHost('Code.Example.COM.:8443'), 'code.example.com');
  assert.equal(normalizeHost('[::1]:8443'), '::1');
  assert.equal(normalizeHost('a.test:port'), undefined);
  assert.equal(normalizeHost(''), undefined);
  const index = new NameIndex<string>();
  index.set('a.test', 'exact');
  index.set('*.wild.test', 'wild');
  assert.equal(index.get('a.test'), 'exact');
  assert.equal(index.get('x.wild.test'), 'wild');
  assert.equal(index.get('wild.test'), undefined, 'a wildcard does not cover its parent');
  assert.equal(index.get('y.x.wild.test'), undefined, 'a wildcard covers exactly one label');
});

test('paths are normalized once: the upstream gets the normalized path, rules match it decoded; ambiguous ones are refused', () => {
  const read = (target: string) => {
    const path = normalizePath(target);
    return 'refused' in path ? 'refused' : { upstream: path.normalized + path.query, match: path.match };
  };
  assert.deepEqual(read('/a/./b/../c?x=/.ht'), { upstream: '/a/c?x=/.ht', match: '/a/c' });
  assert.deepEqual(read('/%2e%2e/%2Ehtaccess'), { upstream: '/.htaccess', match: '/.htaccess' });
  assert.deepEqual(read('//admin//x/'), { upstream: '/admin/x/', match: '/admin/x/' });
  assert.deepEqual(read('/../../etc/passwd'), { upstream: '/etc/passwd', match: '/etc/passwd' });
  assert.deepEqual(read('/%69nternal/%c3%a9t%c3%a9%3f'), {
    upstream: '/internal/%C3%A9t%C3%A9%3F',
    match: '/internal/été?',
  });
  assert.deepEqual(read('/a|b/{c}'), { upstream: '/a%7Cb/%7Bc%7D', match: '/a|b/{c}' });
  assert.deepEqual(read('/%252e%252e/x'), { upstream: '/%252e%252e/x', match: '/%2e%2e/x' });
  assert.deepEqual(read('/.well-known/x.y/...'), { upstream: '/.well-known/x.y/...', match: '/.well-known/x.y/...' });
  assert.deepEqual(read('/a/b/..'), { upstream: '/a/', match: '/a/' });
  // %2F and %5C stay encoded in both forms (a route must allow them); ";" is flagged the same way.
  const slash = normalizePath('/a%2fb%5C..');
  assert.ok(
    !('refused' in slash) && slash.encodedSlash && slash.normalized === '/a%2Fb%5C..' && slash.match === '/a%2Fb%5C..',
  );
  const parameters = normalizePath('/a;b');
  assert.ok(!('refused' in parameters) && parameters.parameters && !parameters.encodedSlash);
  for (const bad of [
    '/x%00y',
    '/%E0%A4%A',
    '/%c0%ae',
    '/%ed%a0%80',
    '/%ff',
    '/a\\b',
    '/a#b',
    '/a%zz',
    '/a%',
    '/a b',
    '/\u00e9',
    '/%0d%0a',
    '*',
    'http://evil/',
  ]) {
    assert.equal(read(bad), 'refused', bad);
  }
});

import assert from 'node:assert/strict';
import { test } from 'node:test';
import { normalizePath } from '../../../src/http/normalize-path.ts';

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

// nginx location matchers as regular expressions on the path (deny_paths, skip_auth_routes, api_routes).
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { literalPrefix, matcherOf, matcherRegex } from '../../../src/import/location-match.ts';
import { parseText } from '../../../src/import/nginx-parse.ts';

const matcher = (text: string) => matcherOf(parseText(`location ${text} { }`, 'l.conf')[0]!)!;

test('prefix, exact, ^~, ~ and ~* locations become regular expressions that match what nginx matches', () => {
  const cases: [string, string, string[], string[]][] = [
    ['/a.b+/', '^/a\\.b\\+/', ['/a.b+/', '/a.b+/x'], ['/aXb+/', '/x/a.b+/']],
    ['= /exact', '^/exact$', ['/exact'], ['/exact/', '/exactly']],
    ['^~ /static/', '^/static/', ['/static/x.css'], ['/x/static/']],
    ['~ \\.php$', '\\.php$', ['/a/b.php'], ['/a.php/x']],
    ['~* /\\.(git|env)', '(?i:/\\.(git|env))', ['/.GIT/config', '/x/.env'], ['/git']],
  ];
  for (const [location, regex, hits, misses] of cases) {
    assert.equal(matcherRegex(matcher(location)), regex, location);
    for (const hit of hits) assert.ok(new RegExp(regex).test(hit), `${location} matches ${hit}`);
    for (const miss of misses) assert.ok(!new RegExp(regex).test(miss), `${location} does not match ${miss}`);
  }
  assert.deepEqual(matcher('@error401'), { kind: 'named', path: '@error401' });
  assert.equal(literalPrefix(matcher('~ ^/api/v1/')), '/api/v1/');
  assert.equal(literalPrefix(matcher('~ ^/api/(v1|v2)/')), undefined);
  assert.equal(literalPrefix(matcher('~* ^/api/')), undefined, 'caseless is not a prefix');
});

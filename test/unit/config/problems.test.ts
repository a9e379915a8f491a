import assert from 'node:assert/strict';
import { test } from 'node:test';
import { ConfigError, formatProblem, keyPath, Problems } from '../../../src/config/problems.ts';
import { parseTomlSource } from '../../../src/config/toml-source.ts';

const SITE = `server_names = ["a.test"]

[tls]
cert = "a.crt"

[[routes]]
path = "/"
upstream = "app"
`;

test('a reporter names the file, the line of the key in the source and the key', () => {
  const problems = new Problems();
  const report = problems.reporter('/c/sites/a.toml', parseTomlSource(SITE));
  report(['tls', 'cert'], 'cannot read');
  report(['routes', 0, 'upstream'], 'no [upstreams.app]');
  report(['server_names', 0], 'taken');
  assert.deepEqual(problems.list, [
    { file: '/c/sites/a.toml', line: 4, key: 'tls.cert', message: 'cannot read' },
    { file: '/c/sites/a.toml', line: 8, key: 'routes[0].upstream', message: 'no [upstreams.app]' },
    { file: '/c/sites/a.toml', line: 1, key: 'server_names[0]', message: 'taken' },
  ]);
  assert.equal(problems.count, 3);
});

test('a key the source does not have falls back to its nearest parent, and to line 1 without a source', () => {
  const problems = new Problems();
  problems.reporter('/c/sites/a.toml', parseTomlSource(SITE))(['tls', 'key'], 'missing');
  problems.reporter('/c/gatehouse.toml')(['sites_dir'], 'cannot read');
  assert.deepEqual(
    problems.list.map((p) => [p.line, p.key]),
    [
      [3, 'tls.key'],
      [1, 'sites_dir'],
    ],
  );
});

test('problems at, inside or around an already reported key are left out; the others are kept', () => {
  const problems = new Problems();
  const report = problems.reporter('/c/sites/a.toml', parseTomlSource(SITE), [
    ['tls', 'cert'],
    ['routes', 0],
  ]);
  report(['tls', 'cert'], 'same key');
  report(['tls'], 'around it');
  report(['routes', 0, 'upstream'], 'inside an item');
  report(['routes'], 'around an item');
  report(['tls', 'certificate'], 'a sibling whose name starts alike');
  report(['routes', 1, 'path'], 'another item');
  report(['server_names', 0], 'elsewhere');
  assert.deepEqual(
    problems.list.map((p) => p.message),
    ['a sibling whose name starts alike', 'another item', 'elsewhere'],
  );
});

test('a problem without a key has an empty key and is formatted without one', () => {
  const problems = new Problems();
  problems.atLine('/c/sites/b.toml', 7, 'TOML syntax: unexpected token');
  assert.deepEqual(problems.list, [
    { file: '/c/sites/b.toml', line: 7, key: '', message: 'TOML syntax: unexpected token' },
  ]);
  assert.equal(formatProblem(problems.list[0]!), '/c/sites/b.toml:7: TOML syntax: unexpected token');
  assert.equal(formatProblem({ file: 'f', line: 2, key: 'routes[0].path', message: 'm' }), 'f:2: routes[0].path: m');
});

test('throwIfAny throws one ConfigError with every problem, in the order found, and nothing when there is none', () => {
  const problems = new Problems();
  problems.throwIfAny();
  problems.atLine('/c/gatehouse.toml', 1, 'cannot read: EACCES');
  problems.reporter('/c/sites/a.toml', parseTomlSource(SITE))(['tls', 'cert'], 'cannot read');
  assert.throws(
    () => problems.throwIfAny(),
    (error: unknown) => {
      assert.ok(error instanceof ConfigError);
      assert.deepEqual(
        error.problems.map((p) => p.key),
        ['', 'tls.cert'],
      );
      assert.equal(
        error.message,
        '2 configuration errors:\n/c/gatehouse.toml:1: cannot read: EACCES\n/c/sites/a.toml:4: tls.cert: cannot read',
      );
      return true;
    },
  );
});

test('keyPath writes list items in brackets and tables with dots', () => {
  assert.equal(keyPath(['routes', 0, 'upstream']), 'routes[0].upstream');
  assert.equal(keyPath(['auth', 'skip_auth_routes', 2]), 'auth.skip_auth_routes[2]');
  assert.equal(keyPath([]), '');
});

import assert from 'node:assert/strict';
import { test } from 'node:test';
import { normalizeHost, NameIndex } from '../../../src/tls/name-index.ts';

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

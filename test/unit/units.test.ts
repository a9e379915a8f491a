import assert from 'node:assert/strict';
import { test } from 'node:test';
import { parseDurationMs, parseSizeBytes } from '../../src/config/units.ts';
import { normalizeHost, NameIndex } from '../../src/tls/name-index.ts';
import { normalizePath } from '../../src/http/request-context.ts';

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

test('paths are decoded, dot segments resolved and slashes merged before rules see them', () => {
  assert.equal(normalizePath('/a/./b/../c?x=/.ht'), '/a/c');
  assert.equal(normalizePath('/%2e%2e/%2Ehtaccess'), '/.htaccess');
  assert.equal(normalizePath('//admin//x/'), '/admin/x/');
  assert.equal(normalizePath('/a%2Fb'), '/a/b');
  assert.equal(normalizePath('/../../etc/passwd'), '/etc/passwd');
  assert.equal(normalizePath('/x%00y'), undefined);
  assert.equal(normalizePath('/%E0%A4%A'), undefined);
  assert.equal(normalizePath('*'), undefined);
  assert.equal(normalizePath('http://evil/'), undefined);
});

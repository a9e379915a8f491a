import assert from 'node:assert/strict';
import { test } from 'node:test';
import { parseDurationMs, parseSizeBytes } from '../../../src/config/units.ts';

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

// The README's "Moving in" tables list every nginx directive and oauth2-proxy option `gatehouse import` knows, with
// the status the code gives it: a directive or option added to the code without a row (or the other way) fails here.
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { test } from 'node:test';
import { authSchema, UNSUPPORTED_AUTH_OPTIONS } from '../../src/config/auth-schema.ts';
import { ABSORBED, IMPLIED_VALUES, TRANSLATED_OPTIONS } from '../../src/import/auth-options.ts';
import { IMPLIED, REFUSED, TRANSLATED } from '../../src/import/translate.ts';

const README = fs.readFileSync(path.resolve(import.meta.dirname, '../../README.md'), 'utf8');

function rows(header: string): Map<string, string> {
  const start = README.indexOf(`| ${header} | status | Gatehouse |`);
  assert.notEqual(start, -1, `no "${header}" table in README.md`);
  const table = README.slice(start).split('\n\n')[0]!.split('\n').slice(2);
  return new Map(table.map((line) => [/^\| `?([^`|]+)`? \|/.exec(line)![1]!, line.split(' | ')[1]!]));
}

test('every nginx directive the importer knows has its row, with its status', () => {
  const table = rows('nginx directive');
  const expected = new Map<string, string>();
  for (const k of Object.keys(REFUSED)) expected.set(k, 'refused');
  for (const k of Object.keys(IMPLIED)) expected.set(k, 'needs nothing');
  for (const k of Object.keys(TRANSLATED)) expected.set(k, 'translated');
  expected.set('any other', 'refused');
  assert.deepEqual(new Map([...table].sort()), new Map([...expected].sort()));
});

test('every oauth2-proxy option the importer or the [auth] schema knows has its row, with its status', () => {
  const table = rows('oauth2-proxy option');
  const keys = new Set([
    ...Object.keys(TRANSLATED_OPTIONS),
    ...Object.keys(authSchema.shape),
    ...Object.keys(ABSORBED),
    ...Object.keys(IMPLIED_VALUES),
    ...Object.keys(UNSUPPORTED_AUTH_OPTIONS),
  ]);
  assert.deepEqual([...table.keys()].sort(), [...keys, 'any other'].sort());
  for (const [key, status] of table) {
    if (key === 'any other') continue;
    const want = TRANSLATED_OPTIONS[key]
      ? 'translated'
      : ABSORBED[key]
        ? 'needs nothing'
        : IMPLIED_VALUES[key]
          ? `needs nothing when \`${JSON.stringify(IMPLIED_VALUES[key].value)}\``
          : key in authSchema.shape
            ? 'translated'
            : 'refused';
    assert.equal(status, want, key);
  }
});

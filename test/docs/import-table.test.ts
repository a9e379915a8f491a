// The README's "Moving in" tables list every nginx directive and oauth2-proxy option `gatehouse import` knows, with
// the status and reason the code gives it. A directive or option added to the code (or a reason changed) without its
// row fails here, and the message carries the tables as they should read, to paste into README.md.
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { test } from 'node:test';
import { authSchema, UNSUPPORTED_AUTH_OPTIONS } from '../../src/config/auth-schema.ts';
import { ABSORBED, IMPLIED_VALUES, TRANSLATED_OPTIONS } from '../../src/import/auth-options.ts';
import { IMPLIED, REFUSED, TRANSLATED } from '../../src/import/nginx-directives.ts';

const README = fs.readFileSync(path.resolve(import.meta.dirname, '../../README.md'), 'utf8');
const FIRST = '| nginx directive | status | Gatehouse |';
const LAST = '| any other | refused | not an oauth2-proxy option Gatehouse knows |';

const cell = (text: string) => text.replace(/\|/g, '\\|');

/** The two tables, from the importer's own tables (the order the importer consults them in). */
function expectedTables(): string {
  const nginx = [FIRST, '|---|---|---|'];
  for (const [k, v] of Object.entries(TRANSLATED)) nginx.push(`| \`${k}\` | translated | ${cell(v)} |`);
  for (const [k, v] of Object.entries(IMPLIED).sort())
    if (!TRANSLATED[k]) nginx.push(`| \`${k}\` | needs nothing | ${cell(v)} |`);
  for (const [k, v] of Object.entries(REFUSED).sort()) nginx.push(`| \`${k}\` | refused | ${cell(v)} |`);
  nginx.push('| any other | refused | no equivalent in Gatehouse |');

  const options = ['| oauth2-proxy option | status | Gatehouse |', '|---|---|---|'];
  const keys = new Set([
    ...Object.keys(TRANSLATED_OPTIONS),
    ...Object.keys(authSchema.shape),
    ...Object.keys(ABSORBED),
    ...Object.keys(IMPLIED_VALUES),
    ...Object.keys(UNSUPPORTED_AUTH_OPTIONS),
  ]);
  for (const k of [...keys].sort()) {
    const implied = IMPLIED_VALUES[k];
    const [status, what] = TRANSLATED_OPTIONS[k]
      ? ['translated', TRANSLATED_OPTIONS[k]]
      : ABSORBED[k]
        ? ['needs nothing', `${ABSORBED[k]}${k.startsWith('cookie_') ? ' (false is refused)' : ''}`]
        : implied
          ? [
              `needs nothing when \`${JSON.stringify(implied.value)}\``,
              `${implied.why}; any other value refused${UNSUPPORTED_AUTH_OPTIONS[k] ? `: ${UNSUPPORTED_AUTH_OPTIONS[k]}` : ''}`,
            ]
          : k in authSchema.shape
            ? [
                'translated',
                k === 'authorization_token'
                  ? 'Gatehouse-only option (not in oauth2-proxy)'
                  : '`[auth]` option of the same name',
              ]
            : ['refused', UNSUPPORTED_AUTH_OPTIONS[k]!];
    options.push(`| \`${k}\` | ${status} | ${cell(what)} |`);
  }
  options.push(LAST);
  return `${nginx.join('\n')}\n\n${options.join('\n')}`;
}

test('the README tables of nginx directives and oauth2-proxy options are the importer’s', () => {
  const start = README.indexOf(FIRST);
  const end = README.indexOf(LAST);
  assert.ok(start > 0 && end > start, 'README.md has the "Moving in" tables');
  const expected = expectedTables();
  assert.ok(
    README.slice(start, end + LAST.length) === expected,
    `README.md's import tables are out of date; they should read:\n\n${expected}\n`,
  );
});

import assert from 'node:assert/strict';
import { Writable } from 'node:stream';
import { test } from 'node:test';
import { createLogger } from '../../../src/observability/logger.ts';

test('cookies, authorization and tokens never reach a log line', () => {
  const lines: string[] = [];
  const log = createLogger(
    { level: 'info', format: 'json' },
    new Writable({
      write(chunk, _e, done) {
        lines.push(String(chunk));
        done();
      },
    }),
  );
  log.info(
    {
      headers: {
        cookie: 'session=SECRET1',
        authorization: 'Bearer SECRET2',
        'x-auth-request-access-token': 'SECRET3',
        accept: 'text/html',
      },
      tokens: { access_token: 'SECRET4', refresh_token: 'SECRET5', id_token: 'SECRET6' },
      auth: { client_secret: 'SECRET7', cookie_secret: 'SECRET8' },
    },
    'something happened',
  );
  const text = lines.join('');
  assert.doesNotMatch(text, /SECRET\d/);
  assert.match(text, /"accept":"text\/html"/);
  assert.equal((text.match(/\[redacted\]/g) ?? []).length, 8);
});

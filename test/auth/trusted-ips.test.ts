// [auth] trusted_ips (oauth2-proxy's option): requests from these client addresses skip authentication. They get no
// identity headers, a signed-in user's included, and identity headers the client sent are still removed.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { startAuthFixture } from '../harness/auth-fixture.ts';

const JSON_ACCEPT = { accept: 'application/json', 'sec-fetch-mode': 'cors', 'sec-fetch-dest': 'empty' };
const SPOOFED = {
  'x-auth-request-user': 'admin',
  'x-forwarded-email': 'admin@example.test',
  x_auth_request_email: 'admin@example.test',
  authorization: 'Bearer forged',
};

test('trusted_ips: a request from a listed address is served without login and without any identity header', async (t) => {
  const f = await startAuthFixture({ auth: { trusted_ips: ['10.0.0.0/8', '127.0.0.1'] } });
  t.after(() => f.close());
  const anonymous = await f.browser().request(`${f.origin}/api/x`, { headers: { ...JSON_ACCEPT, ...SPOOFED } });
  assert.equal(anonymous.status, 200);
  const headers = anonymous.json<{ headers: Record<string, string> }>().headers;
  const identity = Object.keys(headers).filter((name) =>
    /auth-request|forwarded-(user|email)|authorization|_/.test(name),
  );
  assert.deepEqual(identity, []);

  // Signed in (the login itself works from a trusted address): still no identity headers, as with oauth2-proxy.
  const b = f.browser();
  assert.equal((await b.navigate(`${f.origin}/`, 'alice')).status, 200);
  const signedIn = await b.request(`${f.origin}/x`, { headers: JSON_ACCEPT });
  assert.equal(signedIn.json<{ headers: Record<string, string> }>().headers['x-auth-request-user'], undefined);
});

test('trusted_ips: an address outside the list still has to sign in', async (t) => {
  const f = await startAuthFixture({ auth: { trusted_ips: ['10.0.0.0/8'] } });
  t.after(() => f.close());
  const reply = await f.browser().request(`${f.origin}/api/x`, { headers: JSON_ACCEPT });
  assert.equal(reply.status, 401);
  const b = f.browser();
  const page = await b.navigate(`${f.origin}/`, 'alice');
  assert.equal(page.status, 200);
  assert.equal(
    (await b.request(`${f.origin}/x`, { headers: JSON_ACCEPT })).json<{ headers: Record<string, string> }>().headers[
      'x-auth-request-user'
    ],
    'alice@example.test',
  );
});

// `npm start` on a fresh machine: the demo's embedded identity provider makes the login → proxied page → logout
// loop work with no account anywhere (scripted browser; the Chromium version is test/e2e/browser-login.test.ts).
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { test } from 'node:test';
import { startDemo } from '../../src/cli/demo.ts';
import { Browser, freePort } from '../harness/gatehouse-auth.ts';

test('demo: alice logs in, sees the echo page with her identity, logs out, and the page is protected again', async (t) => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'gatehouse-demo-'));
  const demo = await startDemo(dir, await freePort(), true);
  t.after(async () => {
    await demo.gatehouse.stop(1000);
    await demo.stop();
  });
  const b = new Browser(fs.readFileSync(path.join(dir, 'localhost.crt'), 'utf8'));

  const first = await b.request(`${demo.url}/hello`);
  assert.equal(first.status, 302);
  assert.equal(new URL(first.headers.location!).origin, demo.issuer);
  const page = await b.navigate(first.headers.location!, 'alice', { stopAt: (u) => u.pathname === '/hello' });
  assert.equal(page.status, 200);
  assert.match(page.body, /x-auth-request-user<\/th><td>alice@demo\.test/);
  assert.match(page.body, /x-auth-request-groups<\/th><td>admins,staff/);

  const out = await b.request(`${demo.url}/oauth2/sign_out`);
  const back = await b.navigate(out.headers.location!, 'alice', { stopAt: (u) => u.origin === demo.url });
  assert.equal(back.url.href, `${demo.url}/`);
  assert.equal(back.status, 302, 'protected again after logout');
});

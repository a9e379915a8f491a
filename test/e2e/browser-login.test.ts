// A person with headless Chromium (Debian chromium + playwright-core) against the demo setup: visit a protected
// page, log in at the identity provider, land back on the page, see its WebSocket open through Gatehouse, log out,
// and find the page protected again.
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { test } from 'node:test';
import { chromium } from 'playwright-core';
import { startDemo } from '../../src/cli/demo.ts';
import { freePort } from '../harness/gatehouse-auth.ts';

const CHROMIUM = '/usr/bin/chromium';

test('Chromium: protected page → login → back on the page → WebSocket → logout → protected again', async (t) => {
  assert.ok(fs.existsSync(CHROMIUM), `${CHROMIUM} is missing: run: npm run setup`);
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'gatehouse-browser-'));
  const demo = await startDemo(dir, await freePort(), true);
  let browser: Awaited<ReturnType<typeof chromium.launch>> | undefined;
  // The browser goes first, so no connection of it is reset by Gatehouse stopping.
  t.after(async () => {
    await browser?.close();
    await demo.gatehouse.stop(1000);
    await demo.stop();
  });
  browser = await chromium.launch({
    executablePath: CHROMIUM,
    headless: true,
    timeout: 30_000,
    args: [
      '--no-sandbox',
      '--disable-gpu',
      '--disable-quic',
      '--disable-background-networking',
      '--disable-component-update',
      '--disable-sync',
      '--no-first-run',
    ],
  });
  const context = await browser.newContext({ ignoreHTTPSErrors: true });
  const page = await context.newPage();

  await page.goto(`${demo.url}/protected/page?tab=2`);
  assert.ok(page.url().startsWith(demo.issuer), `the login page of the provider, got ${page.url()}`);
  await page.fill('input[name=login]', 'alice');
  await page.fill('input[name=password]', 'any');
  await page.click('button[type=submit]');
  await page.waitForURL(`${demo.url}/protected/page?tab=2`);
  assert.match((await page.textContent('#headers')) ?? '', /alice@demo\.test/);

  // The echo page opens a WebSocket to the same origin; the upgrade carries the session and identity headers.
  await page.waitForFunction("document.getElementById('ws')?.textContent?.startsWith('open')");
  assert.match((await page.textContent('#ws')) ?? '', /"user":"alice@demo\.test"/);

  const cookies = await context.cookies(demo.url);
  const session = cookies.find((c) => c.name === '__Host-_gatehouse')!;
  assert.ok(session.httpOnly && session.secure && session.sameSite === 'Lax' && session.path === '/');
  assert.equal(cookies.filter((c) => c.name.includes('_login_')).length, 0, 'no login-state cookie is left behind');

  await page.goto(`${demo.url}/oauth2/sign_out`);
  // oidc-provider asks to confirm the RP-initiated logout.
  await page.click('button[autofocus], button[type=submit]');
  await page.waitForURL((url) => url.href.startsWith(demo.issuer) && url.pathname.startsWith('/interaction/'));
  assert.equal(
    (await context.cookies(demo.url)).filter((c) => c.name === '__Host-_gatehouse').length,
    0,
    'the session cookie is gone',
  );

  const again = await context.request.get(`${demo.url}/protected/page?tab=2`, {
    maxRedirects: 0,
    headers: { accept: 'text/html', 'sec-fetch-mode': 'navigate', 'sec-fetch-dest': 'document' },
  });
  assert.equal(again.status(), 302, 'the page is protected again');
  const stale = await context.request.get(`${demo.url}/protected/page`, {
    maxRedirects: 0,
    headers: { accept: 'application/json', cookie: `${session.name}=${session.value}` },
  });
  assert.equal(stale.status(), 401, 'the old session cookie was ended server-side');
});

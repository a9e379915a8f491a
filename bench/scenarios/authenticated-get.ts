// The reference architecture's per-request cost: every request carries a login session. Gatehouse checks its own
// session cookie in-process (HMAC + session cache, identity headers added); nginx + auth_request asks an auth service
// per request; plain nginx is the reference. Gatehouse's session comes from a real login at oidc-provider.
import fs from 'node:fs';
import path from 'node:path';
import { Browser } from '../../test/harness/gatehouse-auth.ts';
import { startOP, type OP } from '../../test/harness/op.ts';
import type { Scenario } from '../lib/types.ts';

/** The site's cookie_secret (base64 of 32 bytes); authenticated-10k-sessions signs its seeded sessions with it. */
export const BENCH_COOKIE_SECRET = 'MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=';

/** The identity provider for the Gatehouse start under way; one per start, because it must know the redirect URL. */
let provider: OP | undefined;

export default {
  name: 'authenticated-get',
  title: 'HTTPS/1.1 keep-alive GET with a valid session (identity headers added): wrk, 50 connections',
  systems: ['nginx', 'gatehouse', 'nginx-auth'],
  backend: 'nginx',
  load: { tool: 'wrk', path: '/', connections: 50 },
  gatehouse: {
    siteToml: async ({ port, names }) => {
      await provider?.close();
      provider = await startOP({ redirectUris: [`https://${names[0]}:${port}/oauth2/callback`] });
      return `
[auth]
provider = "oidc"
oidc_issuer_url = "${provider.issuer}"
client_id = "gatehouse"
client_secret = "gatehouse-secret"
cookie_secret = "${BENCH_COOKIE_SECRET}"
email_domains = ["example.test"]
set_xauthrequest = true
pass_access_token = true
pass_authorization_header = true
`;
    },
  },
  async prepare(target) {
    if (!target.system.startsWith('gatehouse')) return {};
    const origin = `https://${target.names[0]}:${target.port}`;
    const browser = new Browser(fs.readFileSync(path.join(target.dir, 'certs', `${target.names[0]}.crt`), 'utf8'));
    const landed = await browser.navigate(`${origin}/`, 'alice');
    if (landed.status !== 200) throw new Error(`login for the bench failed: ${landed.status} at ${landed.url.href}`);
    const cookie = [...browser.cookies(`${target.names[0]}:${target.port}`)]
      .map(([name, value]) => `${name}=${value}`)
      .join('; ');
    return { headers: { cookie } };
  },
  async teardown() {
    await provider?.close();
    provider = undefined;
  },
} satisfies Scenario;

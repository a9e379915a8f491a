// /oauth2/frontchannel_logout?sid=&iss=: OpenID Front-Channel Logout, loaded by the provider in a hidden iframe. Our
// SameSite cookie is not sent there, so sessions are found by the provider's sid. Entra sends only sid, no iss.
// https://openid.net/specs/openid-connect-frontchannel-1_0.html#RPLogout
import { sendOwn } from '../../base/own-answer.ts';
import type { Endpoint } from './call.ts';

export const frontchannelLogout: Endpoint = async ({ auth, url, res, requestId, log }) => {
  const sid = url.searchParams.get('sid');
  const iss = url.searchParams.get('iss');
  const issuer = auth.oidc.ready ? (await auth.oidc.configuration()).serverMetadata().issuer : undefined;
  const ended = sid && (iss === null || iss === issuer) ? await auth.sessions.deleteBySid(sid) : 0;
  log.info({ req_id: requestId, sessions: ended }, 'front-channel logout');
  if (ended > 0) auth.record('logout', 'frontchannel', ended);
  // Only the provider may frame this page.
  const frameAncestors = issuer ? new URL(issuer).origin : "'none'";
  sendOwn(res, 200, requestId, {
    headers: { 'content-security-policy': `frame-ancestors ${frameAncestors}` },
    body: { type: 'text', text: '' },
  });
  return {};
};

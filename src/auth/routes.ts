// The /oauth2/* endpoints of a site with [auth] (oauth2-proxy's paths), one file each in endpoints/: this table maps
// a path to its endpoint; any other /oauth2/ path is 404. Answered before deny rules and routes.
import type { AnyRequest, AnyResponse } from '../base/types.ts';
import type { Logger } from '../observability/logger.ts';
import { auth as authEndpoint } from './endpoints/auth.ts';
import { backchannelLogout } from './endpoints/backchannel-logout.ts';
import { callback } from './endpoints/callback.ts';
import { refuse, type Endpoint, type OAuth2Outcome } from './endpoints/call.ts';
import { frontchannelLogout } from './endpoints/frontchannel-logout.ts';
import { signIn } from './endpoints/sign-in.ts';
import { signOut } from './endpoints/sign-out.ts';
import { start } from './endpoints/start.ts';
import { userinfo } from './endpoints/userinfo.ts';
import { requestOrigin } from './redirect.ts';
import type { SiteAuth } from './site-auth.ts';

export type { OAuth2Outcome } from './endpoints/call.ts';

const ENDPOINTS: ReadonlyMap<string, Endpoint> = new Map([
  ['/oauth2/start', start],
  ['/oauth2/callback', callback],
  ['/oauth2/sign_in', signIn],
  ['/oauth2/sign_out', signOut],
  ['/oauth2/auth', authEndpoint],
  ['/oauth2/userinfo', userinfo],
  ['/oauth2/frontchannel_logout', frontchannelLogout],
  ['/oauth2/backchannel_logout', backchannelLogout],
]);

export async function handleOAuth2(
  auth: SiteAuth,
  req: AnyRequest,
  res: AnyResponse,
  requestId: string,
  pathname: string,
  host: string,
  log: Logger,
): Promise<OAuth2Outcome> {
  const origin = requestOrigin(req.headers, host);
  const call = { auth, req, res, requestId, log, host, origin, url: new URL(origin + (req.url ?? '/')) };
  const endpoint = ENDPOINTS.get(pathname);
  return endpoint ? endpoint(call) : refuse(call, 'ERR_ROUTE_NOT_FOUND');
}

// /oauth2/start?rd=: begins a login now and comes back to `rd` (this site's front page without it).
import { redirectToLogin } from '../challenge.ts';
import { refuse, returnTo, type Endpoint } from './call.ts';

export const start: Endpoint = async (call) => {
  const target = returnTo(call);
  if (!target) return refuse(call, 'ERR_AUTH_REDIRECT_INVALID');
  return { error: await redirectToLogin(call.auth, call.req, call.res, call.requestId, call.origin, target) };
};

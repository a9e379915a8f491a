// /oauth2/auth: 202 for a signed-in user the policy allows, 401 or 403 otherwise, for anything still doing an nginx
// auth_request (https://nginx.org/en/docs/http/ngx_http_auth_request_module.html), with the user headers.
import { sendOwn } from '../../base/own-answer.ts';
import { identityHeaders } from '../identity-headers.ts';
import { allowedSession, type Endpoint } from './call.ts';

export const auth: Endpoint = async (call) => {
  const allowed = await allowedSession(call);
  if (!('session' in allowed)) return allowed;
  // The user headers only, never a token: this answer reaches the browser too, where any script of the site reads
  // it (fetch('/oauth2/auth')). Tokens go to Gatehouse's upstreams only, so unlike oauth2-proxy there is no
  // X-Auth-Request-Access-Token here for an nginx auth_request to copy (README, "Endpoints").
  const { settings } = call.auth;
  const headers = settings.setXAuthRequest ? identityHeaders(settings, allowed.session, { tokens: false }) : {};
  for (const name of Object.keys(headers)) if (name.startsWith('x-forwarded-')) delete headers[name];
  sendOwn(call.res, 202, call.requestId, { headers, body: { type: 'json', text: '' } });
  return {};
};

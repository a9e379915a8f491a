// /oauth2/userinfo: the signed-in user as JSON (user, email, groups, preferred username), 401 or 403 otherwise.
import { sendOwn } from '../../base/own-answer.ts';
import { userinfo as userinfoOf } from '../identity-headers.ts';
import { allowedSession, type Endpoint } from './call.ts';

export const userinfo: Endpoint = async (call) => {
  const allowed = await allowedSession(call);
  if (!('session' in allowed)) return allowed;
  sendOwn(call.res, 200, call.requestId, {
    body: { type: 'json', text: JSON.stringify(userinfoOf(allowed.session.identity)) },
  });
  return {};
};

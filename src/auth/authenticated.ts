// What SiteAuth.authenticate() answers, in a module of its own: the request path compares with it on every request
// without loading the login code (openid-client, jose), which only a site with [auth] needs (http/runtime.ts).
import type { Session } from '../session/sessions.ts';

/** What authenticate() answers when the access token the site sends upstream has expired and no refresh completed in
 *  time: the request gets 503 with Retry-After, never the expired token. */
export const PROVIDER_UNAVAILABLE = 'provider-unavailable';
export type Authenticated = Session | undefined | typeof PROVIDER_UNAVAILABLE;

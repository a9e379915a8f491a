// The state of one login in flight, kept in its own short-lived sealed cookie named after the state value, so
// several tabs can log in at once and each callback finds its own verifier, nonce and return URL.
import crypto from 'node:crypto';
import { cookiesWithPrefix, readCookie } from './cookies.ts';
import { derivedKey, seal, unseal } from './crypto.ts';

export interface LoginState {
  state: string;
  nonce: string;
  codeVerifier: string;
  /** Where to go after the login: a URL already validated against the site and whitelist_domains. */
  returnTo: string;
  createdAt: number;
}

export const LOGIN_STATE_TTL_MS = 10 * 60_000;
/** Above this many logins in flight the oldest cookies are dropped, so a tab storm cannot grow the Cookie header past limits. */
export const MAX_LOGINS_IN_FLIGHT = 5;

export class LoginStateCookies {
  readonly prefix: string;
  readonly #key: crypto.KeyObject;

  constructor(secret: Buffer, sessionCookieName: string) {
    this.#key = derivedKey(secret, 'login-state');
    this.prefix = `${sessionCookieName}_login_`;
  }

  nameFor(state: string): string {
    return this.prefix + crypto.createHash('sha256').update(state).digest('base64url').slice(0, 12);
  }

  seal(login: LoginState): string {
    return seal(this.#key, Buffer.from(JSON.stringify(login)), this.nameFor(login.state)).toString('base64url');
  }

  /** The login a callback's state belongs to; undefined for an unknown, forged, tampered or expired state. */
  find(cookieHeader: string | string[] | undefined, state: string, now = Date.now()): LoginState | undefined {
    const name = this.nameFor(state);
    const value = readCookie(cookieHeader, name);
    if (!value) return undefined;
    const plain = unseal(this.#key, Buffer.from(value, 'base64url'), name);
    if (!plain) return undefined;
    const login = JSON.parse(plain.toString('utf8')) as LoginState;
    if (login.state !== state || now - login.createdAt > LOGIN_STATE_TTL_MS) return undefined;
    return login;
  }

  /** Names of login cookies to clear before a new one is added, oldest first by position in the header. */
  excess(cookieHeader: string | string[] | undefined): string[] {
    const present = cookiesWithPrefix(cookieHeader, this.prefix).map(([name]) => name);
    return present.length >= MAX_LOGINS_IN_FLIGHT ? present.slice(0, present.length - MAX_LOGINS_IN_FLIGHT + 1) : [];
  }
}

// /oauth2/sign_in?rd=: a page with one button that starts the login (oauth2-proxy's sign-in page, without templates).
import { sendOwn } from '../../base/own-answer.ts';
import { html, renderPage } from '../../base/page.ts';
import { refuse, returnTo, type Endpoint } from './call.ts';

const STYLE = html`<style>body{font:16px system-ui;display:grid;place-items:center;min-height:90vh}a{padding:.8em 1.6em;border-radius:6px;background:#1f5fbf;color:#fff;text-decoration:none}</style>`;

export const signIn: Endpoint = async (call) => {
  const target = returnTo(call);
  if (!target) return refuse(call, 'ERR_AUTH_REDIRECT_INVALID');
  const provider = call.auth.settings.provider === 'entra-id' ? 'Microsoft' : 'your identity provider';
  const page = renderPage({
    title: 'Sign in',
    head: STYLE,
    body: html`<main><h1>Sign in to ${call.host}</h1><p><a id="sign-in" href="/oauth2/start?rd=${encodeURIComponent(target)}">Sign in with ${provider}</a></p></main>`,
  });
  sendOwn(call.res, 200, call.requestId, { body: { type: 'html', text: page } });
  return {};
};

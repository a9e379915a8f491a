// The ACME client: one account key per storage folder (made once, then reused), the account registered with the CA,
// and the trust for the CA's HTTPS endpoint. acme-client sends every request through its own axios instance,
// so an extra root ([acme] ca_root, e.g. a private CA or Pebble) is added there only, not to the rest of the process.
import fs from 'node:fs';
import https from 'node:https';
import tls from 'node:tls';
import acme from 'acme-client';
import { Agent, fetch } from 'undici';
import type { AcmeConfig } from '../config/model.ts';
import { writeFileAtomic } from '../base/atomic-write.ts';
import type { AccountKeys } from './store.ts';

/** acme-client polls pending orders with exponential backoff; its default starts at 5 s, 1 s answers sooner. */
export interface PollOptions {
  backoffMin: number;
  backoffMax: number;
  backoffAttempts: number;
}
export const DEFAULT_POLL: PollOptions = { backoffMin: 1000, backoffMax: 30_000, backoffAttempts: 12 };

const extraRoots = new Set<string>();
let dispatcher: Agent | undefined;

export function trustForAcme(caPem: string): void {
  if (extraRoots.has(caPem)) return;
  extraRoots.add(caPem);
  const ca = [...tls.rootCertificates, ...extraRoots];
  acme.axios.defaults.httpsAgent = new https.Agent({ keepAlive: true, ca });
  dispatcher = new Agent({ connect: { ca } });
}

/** GET a JSON resource of the ACME server (directory, renewalInfo) with the same trust as acme-client, 30 s at most. */
export async function acmeGet(url: string): Promise<{ status: number; body: unknown; retryAfter: string | null }> {
  let response;
  try {
    response = await fetch(url, { signal: AbortSignal.timeout(30_000), ...(dispatcher ? { dispatcher } : {}) });
  } catch (error) {
    const cause = (error as { cause?: { message?: string } }).cause?.message;
    throw new Error(`cannot reach the ACME server at ${url}: ${cause ?? (error as Error).message}`);
  }
  const text = await response.text();
  let body: unknown = text;
  try {
    body = JSON.parse(text);
  } catch {
    /* not JSON: keep the text for the error message */
  }
  return { status: response.status, body, retryAfter: response.headers.get('retry-after') };
}

/** Reads the account key, or creates it exactly once even when two processes start together (link fails if it exists). */
export async function loadOrCreateAccountKey(file: string): Promise<string> {
  try {
    return fs.readFileSync(file, 'utf8');
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'ENOENT')
      throw new Error(`cannot read the ACME account key ${file}: ${(error as Error).message}`);
  }
  const candidate = `${file}.${process.pid}.new`;
  writeFileAtomic(candidate, (await acme.crypto.createPrivateEcdsaKey()).toString(), 0o600);
  try {
    fs.linkSync(candidate, file);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'EEXIST') throw error;
  } finally {
    fs.rmSync(candidate, { force: true });
  }
  return fs.readFileSync(file, 'utf8');
}

/** acme-client's axios waits for an answer forever by default: a CA connection that hangs would stall the renewal
 *  scheduler for good. With a bound the order fails, is logged and retried with backoff like any other failure. */
const ACME_REQUEST_TIMEOUT_MS = 60_000;

/** A client with the account registered, made for each order: newAccount with the stored key returns the existing
 *  account (RFC 8555 §7.3.1), or registers it anew when the CA has forgotten it (a CA reset or restarted, an
 *  account removed), where a client kept from before would get accountDoesNotExist on every request. A deactivated
 *  account refuses its key for good (RFC 8555 §7.3.6): that key is kept aside and a new one registers a new account. */
export async function createAcmeClient(
  config: AcmeConfig,
  poll: PollOptions = DEFAULT_POLL,
  onKeyRetired: (retired: string) => void = () => {},
  keys: AccountKeys = {
    load: () => loadOrCreateAccountKey(config.accountKeyFile),
    retire: async (refused) => retireAccountKey(config.accountKeyFile, refused),
  },
): Promise<acme.Client> {
  acme.axios.defaults.timeout = ACME_REQUEST_TIMEOUT_MS;
  const register = async (accountKey: string) => {
    const client = new acme.Client({ directoryUrl: config.directoryUrl, accountKey, ...poll });
    await client.createAccount({
      termsOfServiceAgreed: config.termsOfServiceAgreed,
      ...(config.email ? { contact: [`mailto:${config.email}`] } : {}),
    });
    return client;
  };
  const accountKey = await keys.load();
  try {
    return await register(accountKey);
  } catch (error) {
    // Boulder and Pebble: 403 unauthorized "An account with the provided public key exists but is deactivated".
    if (!/\bdeactivated\b/i.test((error as Error).message)) throw error;
    const retired = await keys.retire(accountKey);
    if (retired) onKeyRetired(retired);
    return register(await keys.load());
  }
}

/** Moves a refused account key aside (never deleted), unless another process sharing the storage already replaced it. */
export function retireAccountKey(file: string, refusedKey: string): string | undefined {
  let stored: string;
  try {
    stored = fs.readFileSync(file, 'utf8');
  } catch {
    return undefined;
  }
  if (stored !== refusedKey) return undefined;
  const retired = `${file}.deactivated-${new Date().toISOString().replace(/[-:]|\.\d{3}/g, '')}`;
  fs.renameSync(file, retired);
  return retired;
}

/** The parts of the ACME directory we look at: ARI (RFC 9773) and profiles (draft-aaron-acme-profiles). */
export interface Directory {
  renewalInfo?: string;
  meta?: { profiles?: Record<string, string> };
}

/** The directory object (cached by the caller): tells whether the CA offers renewalInfo (ARI) and profiles. */
export async function fetchDirectory(directoryUrl: string): Promise<Directory> {
  const { status, body } = await acmeGet(directoryUrl);
  if (status !== 200 || typeof body !== 'object' || body === null || !('newOrder' in body)) {
    throw new Error(`${directoryUrl} is not an ACME directory (HTTP ${status}: ${JSON.stringify(body).slice(0, 200)})`);
  }
  return body as Directory;
}

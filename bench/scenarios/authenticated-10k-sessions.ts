// The memory target of issue 5: an authenticated keep-alive load spread over 10,000 live sessions, so every session
// sits in Gatehouse's session cache at once. One session comes from a real login (as in authenticated-get); the other
// 9,999 are written into the store Gatehouse runs on, with tokens of the sizes Entra ID issues (access ≈ 2 KB,
// ID ≈ 1.3 KB, refresh ≈ 1.2 KB), every one is requested once (so all are in memory before the warm-up: the figures
// are the steady state, not the first loads after a restart), and wrk rotates through all their cookies.
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { Pool } from 'undici';
import { openSessionStore } from '../../src/session/store.ts';
import { SiteSessions } from '../../src/session/sessions.ts';
import type { Scenario } from '../lib/types.ts';
import authenticatedGet, { BENCH_COOKIE_SECRET } from './authenticated-get.ts';

const SESSIONS = 10_000;
const token = (length: number) =>
  crypto
    .randomBytes(Math.ceil(length * 0.75))
    .toString('base64url')
    .slice(0, length);

export default {
  ...authenticatedGet,
  name: 'authenticated-10k-sessions',
  title: `HTTPS/1.1 keep-alive GET, each request with the next of ${SESSIONS.toLocaleString('en')} live sessions: wrk, 50 connections`,
  systems: ['nginx', 'gatehouse'],
  async prepare(target) {
    if (!target.system.startsWith('gatehouse')) return {};
    const login = await authenticatedGet.prepare(target);
    const store = openSessionStore('sqlite', path.join(target.systemDir, 'state', 'sessions.sqlite'));
    const sessions = new SiteSessions(
      target.names[0]!,
      Buffer.from(BENCH_COOKIE_SECRET, 'base64'),
      '__Host-_gatehouse',
      store,
      1,
    );
    const cookies = [login.headers!.cookie!];
    for (let i = 1; i < SESSIONS; i++) {
      const email = `user${i}@example.test`;
      const session = await sessions.create(
        {
          identity: {
            user: email,
            email,
            preferredUsername: email,
            sub: crypto.randomUUID(),
            groups: Array.from({ length: 5 }, () => crypto.randomUUID()),
            roles: [],
          },
          accessToken: token(2_000),
          idToken: token(1_300),
          refreshToken: token(1_200),
          accessExpiresAt: Date.now() + 3_600_000,
        },
        3_600_000,
      );
      cookies.push(`${sessions.cookieName}=${sessions.cookieValue(session)}`);
    }
    store.close();
    await requestEach(
      cookies,
      `https://${target.names[0]}:${target.port}`,
      fs.readFileSync(path.join(target.dir, 'certs', `${target.names[0]}.crt`), 'utf8'),
    );
    return { cookies };
  },
} satisfies Scenario;

/** One GET per cookie, 50 at a time; every answer must be 200 (a refused session would make the bench measure 401s). */
async function requestEach(cookies: string[], origin: string, ca: string): Promise<void> {
  const pool = new Pool(origin, { connections: 50, connect: { ca } });
  try {
    let next = 0;
    await Promise.all(
      Array.from({ length: 50 }, async () => {
        while (next < cookies.length) {
          const response = await pool.request({ path: '/', method: 'GET', headers: { cookie: cookies[next++]! } });
          await response.body.dump();
          if (response.statusCode !== 200) throw new Error(`a seeded session was refused: ${response.statusCode}`);
        }
      }),
    );
  } finally {
    await pool.close();
  }
}

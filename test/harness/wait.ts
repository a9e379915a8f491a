// Waiting in tests: on a condition checked often, never a fixed sleep, with a generous bound that fails saying what
// was awaited. CI machines are shared: on a 2-core machine loaded by other work Node runs 2–5× slower, so a bound is
// there to end a hung test with a clear message, not to measure speed.
import assert from 'node:assert/strict';

/** The bound for one wait: far above what any wait takes on an idle machine (milliseconds to a few seconds). */
export const WAIT_MS = 60_000;

/** Resolves once `check` holds; fails after `ms` with `what` (a function is called then, e.g. to show a log). */
export async function until(
  check: () => boolean | Promise<boolean>,
  what: string | (() => string),
  ms = WAIT_MS,
): Promise<void> {
  const deadline = Date.now() + ms;
  while (!(await check())) {
    if (Date.now() > deadline)
      assert.fail(`timed out after ${ms / 1000} s waiting for: ${typeof what === 'function' ? what() : what}`);
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

/** `promise`, or a rejection naming `what` after `ms`. */
export function within<T>(promise: Promise<T>, what: string, ms = WAIT_MS): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  return Promise.race([
    promise.finally(() => clearTimeout(timer)),
    new Promise<never>((_resolve, reject) => {
      timer = setTimeout(() => reject(new Error(`${what}: nothing after ${ms} ms`)), ms);
    }),
  ]);
}

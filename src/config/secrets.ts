// Secret references in string values: "${env:NAME}" reads an environment variable, "${file:PATH}" a file
// (trailing newline trimmed, path relative to the config folder), so examples never carry a secret inline.
import fs from 'node:fs';
import path from 'node:path';

const REFERENCE = /\$\{(env|file):([^}]+)\}/g;

export interface SecretProblem {
  path: (string | number)[];
  message: string;
}

/** Returns a copy of `value` with every reference replaced; problems are collected, not thrown. */
export function resolveSecretReferences(
  value: unknown,
  configDir: string,
  env: NodeJS.ProcessEnv,
  problems: SecretProblem[],
  at: (string | number)[] = [],
): unknown {
  if (typeof value === 'string') {
    return value.replace(REFERENCE, (_whole, kind: string, name: string) => {
      if (kind === 'env') {
        const found = env[name];
        if (found === undefined) problems.push({ path: at, message: `environment variable ${name} is not set` });
        return found ?? '';
      }
      const file = path.resolve(configDir, name);
      try {
        return fs.readFileSync(file, 'utf8').replace(/\r?\n$/, '');
      } catch (error) {
        problems.push({
          path: at,
          message: `cannot read secret file ${file}: ${(error as NodeJS.ErrnoException).code ?? String(error)}`,
        });
        return '';
      }
    });
  }
  if (Array.isArray(value))
    return value.map((item, i) => resolveSecretReferences(item, configDir, env, problems, [...at, i]));
  if (value !== null && typeof value === 'object' && !(value instanceof Date)) {
    return Object.fromEntries(
      Object.entries(value).map(([key, item]) => [
        key,
        resolveSecretReferences(item, configDir, env, problems, [...at, key]),
      ]),
    );
  }
  return value;
}

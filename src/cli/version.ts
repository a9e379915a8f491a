import { createRequire } from 'node:module';

export function version(): string {
  const pkg = createRequire(import.meta.url)('../../package.json') as { version: string };
  return `gatehouse ${pkg.version} (node ${process.version})`;
}

// `gatehouse check`: validate without serving, like `nginx -t`.
import { loadConfig } from '../config/load.ts';
import { ConfigError, formatProblem } from '../config/problems.ts';

export function check(configDir: string): number {
  try {
    const config = loadConfig(configDir);
    const names = config.sites.flatMap((site) => site.serverNames);
    process.stdout.write(
      `${config.file}: configuration is valid (${config.sites.length} site${config.sites.length === 1 ? '' : 's'}: ${names.join(', ')})\n`,
    );
    return 0;
  } catch (error) {
    return reportConfigError(error);
  }
}

export function reportConfigError(error: unknown): number {
  if (!(error instanceof ConfigError)) throw error;
  process.stderr.write(`${error.problems.length} configuration error${error.problems.length === 1 ? '' : 's'}:\n`);
  for (const problem of error.problems) process.stderr.write(`  ${formatProblem(problem)}\n`);
  return 2;
}

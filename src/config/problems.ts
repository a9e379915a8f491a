// Configuration problems. Each names file, line and key; a load collects all of them and reports them together
// (one `gatehouse check` lists everything that is wrong), and returns nothing unless there is none.
import type { TomlSource } from './toml-source.ts';

export interface ConfigProblem {
  file: string;
  line: number;
  key: string;
  message: string;
}

export class ConfigError extends Error {
  readonly problems: ConfigProblem[];
  constructor(problems: ConfigProblem[]) {
    super(
      `${problems.length} configuration error${problems.length === 1 ? '' : 's'}:\n${problems.map(formatProblem).join('\n')}`,
    );
    this.problems = problems;
  }
}

export function formatProblem(p: ConfigProblem): string {
  return `${p.file}:${p.line}: ${p.key ? `${p.key}: ` : ''}${p.message}`;
}

/** A key in a TOML file: ["routes", 0, "upstream"] is routes[0].upstream. */
export type KeyPath = (string | number)[];

/** Reports a problem at a key of the file being checked. */
export type Report = (at: KeyPath, message: string) => void;

/** Every problem found by one load, in the order found. */
export class Problems {
  readonly list: ConfigProblem[] = [];

  get count(): number {
    return this.list.length;
  }

  /** A problem that has no key: a file that cannot be read, or is not TOML. */
  atLine(file: string, line: number, message: string): void {
    this.list.push({ file, line, key: '', message });
  }

  /**
   * Reports problems at keys of one file, on the line where its source has the key (line 1 without a source).
   * A problem at, inside or around a key of `alreadyReported` only repeats what was said there: it is left out.
   */
  reporter(file: string, source?: Pick<TomlSource, 'lineOf'>, alreadyReported: KeyPath[] = []): Report {
    const reported = alreadyReported.map(keyPath);
    return (at, message) => {
      const key = keyPath(at);
      if (!followsFrom(key, reported)) this.list.push({ file, line: source?.lineOf(at) ?? 1, key, message });
    };
  }

  /** Throws a ConfigError with every problem, when there is one. */
  throwIfAny(): void {
    if (this.list.length > 0) throw new ConfigError(this.list);
  }
}

/** "routes[0].upstream" for ["routes", 0, "upstream"]: how problems name keys. */
export function keyPath(at: ReadonlyArray<string | number>): string {
  return at.reduce<string>((text, k) => (typeof k === 'number' ? `${text}[${k}]` : text ? `${text}.${k}` : k), '');
}

/** Whether a later problem is only the consequence of a key already reported (the same key, inside it, or around it). */
function followsFrom(key: string, reported: string[]): boolean {
  return reported.some(
    (r) =>
      key === r ||
      key.startsWith(`${r}.`) ||
      key.startsWith(`${r}[`) ||
      r.startsWith(`${key}.`) ||
      r.startsWith(`${key}[`),
  );
}

// Parse TOML and remember the line of every key, so that each config error can name file, line and key.
import { getStaticTOMLValue, parseTOML, type AST } from 'toml-eslint-parser';

export interface TomlSource {
  value: Record<string, unknown>;
  /** Line of a key path such as "routes.0.upstream"; falls back to the nearest parent that has one. */
  lineOf(path: ReadonlyArray<PropertyKey>): number;
}

export class TomlSyntaxError extends Error {
  readonly line: number;
  constructor(message: string, line: number) {
    super(message);
    this.line = line;
  }
}

export function parseTomlSource(text: string): TomlSource {
  let program: AST.TOMLProgram;
  try {
    program = parseTOML(text);
  } catch (error) {
    const { message, lineNumber } = error as { message: string; lineNumber?: number };
    throw new TomlSyntaxError(message, lineNumber ?? 1);
  }
  const lines = new Map<string, number>();
  const keyName = (key: AST.TOMLKey['keys'][number]) => (key.type === 'TOMLBare' ? key.name : key.value);
  const visitValue = (node: AST.TOMLContentNode, path: (string | number)[]) => {
    if (node.type === 'TOMLArray')
      node.elements.forEach((element, i) => {
        remember([...path, i], element.loc.start.line);
        visitValue(element, [...path, i]);
      });
    if (node.type === 'TOMLInlineTable') node.body.forEach((kv) => visitKeyValue(kv, path));
  };
  const visitKeyValue = (kv: AST.TOMLKeyValue, parent: (string | number)[]) => {
    const path = [...parent, ...kv.key.keys.map(keyName)];
    remember(path, kv.loc.start.line);
    visitValue(kv.value, path);
  };
  const remember = (path: (string | number)[], line: number) => {
    if (!lines.has(path.join('.'))) lines.set(path.join('.'), line);
  };

  const top = program.body[0];
  for (const node of top?.body ?? []) {
    if (node.type === 'TOMLKeyValue') {
      visitKeyValue(node, []);
      continue;
    }
    remember(node.resolvedKey, node.loc.start.line);
    for (const kv of node.body) visitKeyValue(kv, node.resolvedKey);
  }
  return {
    value: getStaticTOMLValue(program) as Record<string, unknown>,
    lineOf(path) {
      for (let n = path.length; n > 0; n--) {
        const line = lines.get(path.slice(0, n).map(String).join('.'));
        if (line !== undefined) return line;
      }
      return 1;
    },
  };
}

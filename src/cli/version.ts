// The version comes from package.json through a JSON import, which works both when Node runs the sources and
// inside the single executable (esbuild inlines the JSON; `import.meta.url` is empty in its CJS bundle).
import pkg from '../../package.json' with { type: 'json' };

export function version(): string {
  return `gatehouse ${pkg.version} (node ${process.version})`;
}

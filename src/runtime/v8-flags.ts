// The V8 flags Gatehouse runs with. V8 reads heap sizes once, when the process starts (v8.setFlagsFromString later
// changes nothing), so they travel on the command line: the single executable carries them (SEA "execArgv",
// src/cli/build-binary.ts), cluster workers get them from the primary (runtime/worker-supervision.ts), and `node src/main.ts`
// wants them written out (README). https://nodejs.org/api/cli.html#--max-semi-space-sizesize-in-mib
//
// --max-semi-space-size=8: the young generation stays at 2 × 8 MB instead of growing to 2 × 32 MB on a large machine
// (a proxy allocates a lot of short-lived garbage, so V8 grows it to the maximum). Measured same run, interleaved,
// against 2 MB (bench/README.md, "Memory"): keep-alive 216 vs 262 µs/request at 162 vs 149 MB peak RSS; with 10,000
// live sessions 375 vs 416 µs and 248 vs 332 MB: a young generation smaller than the requests in flight promotes
// them, and the old generation then grows with their garbage.
export const V8_FLAGS: readonly string[] = ['--max-semi-space-size=8'];

/** `flags` plus those of V8_FLAGS whose option the command line does not already set (an operator's choice wins). */
export function withV8Flags(flags: readonly string[]): string[] {
  const option = (flag: string) => flag.split('=')[0]!.replaceAll('_', '-');
  const present = new Set(flags.map(option));
  return [...flags, ...V8_FLAGS.filter((flag) => !present.has(option(flag)))];
}

// From samples to the report: per scenario and system the medians over repetitions (min–max for rps and CPU),
// and every figure as a ratio to nginx measured in the same run. Markdown table, JSON and an SVG chart.
import { median, range } from './stats.ts';
import type { Sample, SystemName } from './types.ts';

export interface Row {
  scenario: string;
  system: SystemName;
  /** The name shown: the system's, or gatehouse@<ref> for the baseline. */
  label: string;
  reps: number;
  rps?: number;
  rpsRange?: [number, number];
  p50Ms?: number;
  p99Ms?: number;
  cpuUsPerReq?: number;
  cpuRange?: [number, number];
  peakRssMb?: number;
  /** Highest sampled sum of VmRSS during the measured windows. */
  windowRssMb?: number;
  /** Foreign load in % of one core: median and highest over the repetitions. */
  foreignLoadPct?: number;
  foreignLoadMaxPct?: number;
  /** Repetitions whose foreign load was above the threshold: this row's figures must not be published. */
  contended: number;
  /** The fixed rate offered (open-loop scenarios). */
  offeredRps?: number;
  errors: number;
  resumed?: number;
  upstreamConns?: number;
  /** Ratios to nginx in the same scenario: rps and CPU efficiency (nginx µs ÷ this µs) are "higher is better". */
  vsNginx?: { rps?: number; cpuEfficiency?: number; p99?: number; peakRss?: number };
}

export function summarize(samples: readonly Sample[], maxForeignLoad = 10): Row[] {
  const rows: Row[] = [];
  const keys = [...new Set(samples.map((s) => `${s.scenario}\0${s.system}`))];
  for (const key of keys) {
    const [scenario, system] = key.split('\0') as [string, SystemName];
    const mine = samples.filter((s) => s.scenario === scenario && s.system === system);
    const foreign = mine.map((s) => s.foreignLoadPct);
    rows.push({
      scenario,
      system,
      label: mine[0]!.label ?? system,
      reps: mine.length,
      rps: median(mine.map((s) => s.rps)),
      rpsRange: range(mine.map((s) => s.rps)),
      p50Ms: median(mine.map((s) => s.p50Ms)),
      p99Ms: median(mine.map((s) => s.p99Ms)),
      cpuUsPerReq: median(mine.map((s) => s.cpuUsPerReq)),
      cpuRange: range(mine.map((s) => s.cpuUsPerReq)),
      peakRssMb: Math.max(...mine.map((s) => s.peakRssMb)),
      windowRssMb: Math.max(...mine.map((s) => s.windowRssMb)),
      foreignLoadPct: median(foreign),
      foreignLoadMaxPct: range(foreign)?.[1],
      contended: mine.filter((s) => s.foreignLoadPct > maxForeignLoad).length,
      offeredRps: median(mine.map((s) => s.offeredRps)),
      errors: mine.reduce((sum, s) => sum + s.errors, 0),
      resumed: median(mine.map((s) => s.resumed)),
      upstreamConns: median(mine.map((s) => s.upstreamConns)),
    });
  }
  for (const row of rows) {
    const ref = rows.find((r) => r.scenario === row.scenario && r.system === 'nginx');
    if (!ref) continue;
    const ratio = (a?: number, b?: number) => (a !== undefined && b !== undefined && b > 0 ? a / b : undefined);
    row.vsNginx = {
      rps: ratio(row.rps, ref.rps),
      cpuEfficiency: ratio(ref.cpuUsPerReq, row.cpuUsPerReq),
      p99: ratio(row.p99Ms, ref.p99Ms),
      peakRss: ratio(row.peakRssMb, ref.peakRssMb),
    };
  }
  return rows;
}

const n = (value: number | undefined, digits = 0) =>
  value === undefined
    ? '–'
    : value.toLocaleString('en-US', { minimumFractionDigits: digits, maximumFractionDigits: digits });
const x = (value: number | undefined) => (value === undefined ? '–' : `${value.toFixed(2)}×`);

export function markdown(rows: readonly Row[], titles: Record<string, string>): string {
  const lines = [
    '| scenario | system | rps median (min–max) | p50 / p99 ms | CPU µs/req (min–max) | peak RSS MB window / process | errors | foreign load % of a core, median (max) | rps ÷ nginx | CPU efficiency vs nginx | p99 ÷ nginx | RSS ÷ nginx |',
    '|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|',
  ];
  for (const r of rows) {
    const extra = [
      r.offeredRps !== undefined ? `offered ${n(r.offeredRps)} rps` : '',
      r.resumed !== undefined ? `${Math.round(r.resumed * 100)} % resumed` : '',
      r.upstreamConns !== undefined ? `${n(r.upstreamConns)} upstream conns` : '',
    ]
      .filter(Boolean)
      .join(', ');
    lines.push(
      `| ${r.scenario} | ${r.label}${extra ? ` (${extra})` : ''} | ${n(r.rps)} (${n(r.rpsRange?.[0])}–${n(r.rpsRange?.[1])}) | ${n(r.p50Ms, 2)} / ${n(r.p99Ms, 2)} | ${n(r.cpuUsPerReq)} (${n(r.cpuRange?.[0])}–${n(r.cpuRange?.[1])}) | ${n(r.windowRssMb)} / ${n(r.peakRssMb)} | ${r.errors} | ${n(r.foreignLoadPct)} (${n(r.foreignLoadMaxPct)})${r.contended ? ` ⚠ contended (${r.contended} of ${r.reps})` : ''} | ${x(r.vsNginx?.rps)} | ${x(r.vsNginx?.cpuEfficiency)} | ${x(r.vsNginx?.p99)} | ${x(r.vsNginx?.peakRss)} |`,
    );
  }
  const legend = Object.entries(titles).map(([name, title]) => `- **${name}**: ${title}`);
  return `${lines.join('\n')}\n\nScenarios:\n${legend.join('\n')}\n\nCPU µs/req: user+system CPU of the system's processes (nginx master + workers; nginx-auth includes its auth service) over the measured window ÷ completed requests. CPU efficiency vs nginx = nginx's µs/req ÷ this system's (higher is better; 0.5× = twice nginx's CPU per request). Ratios come from medians of the same run. Peak RSS: window = the highest sum of the processes' VmRSS sampled every 200 ms while measured; process = the sum of their VmHWM (peak since start, warm-up included). Foreign load: CPU that processes the bench did not start took on the measured cores during the window (/proc/stat busy time minus the system's, the upstream's, the load generator's and the harness's own CPU), in % of one core; ⚠ contended marks windows above the threshold.\n`;
}

/** The run's verdict on foreign load: publishable only when no window (calibration included) was above the threshold. */
export function foreignLoadSummary(
  windows: readonly Sample[],
  maxForeignLoad: number,
): {
  text: string;
  facts: {
    maxAllowedPct: number;
    windows: number;
    contendedWindows: number;
    highestPct?: number;
    publishable: boolean;
  };
} {
  const contended = windows.filter((s) => s.foreignLoadPct > maxForeignLoad).length;
  const highest = range(windows.map((s) => s.foreignLoadPct))?.[1];
  const facts = {
    maxAllowedPct: maxForeignLoad,
    windows: windows.length,
    contendedWindows: contended,
    highestPct: highest,
    publishable: contended === 0 && windows.length > 0,
  };
  const text = contended
    ? `⚠ CONTENDED RUN, DO NOT PUBLISH: ${contended} of ${windows.length} measured windows had foreign load above ${maxForeignLoad} % of a core (highest ${n(highest)} %). Other processes took CPU from the measured cores; the figures overstate every system's cost, Node's most.`
    : `Foreign load stayed at or below ${maxForeignLoad} % of a core in all ${windows.length} measured windows (highest ${n(highest)} %).`;
  return { text, facts };
}

const COLORS: Record<SystemName, string> = {
  nginx: '#888',
  gatehouse: '#1f77b4',
  'nginx-auth': '#ff7f0e',
  caddy: '#2ca02c',
  'gatehouse-baseline': '#9ecae1',
  'node-undici-https': '#9467bd',
  'node-undici-h2compat': '#c5b0d5',
  'node-rawpool-https': '#8c564b',
  'node-ownloop-tls': '#e377c2',
};

/** Horizontal bars: CPU efficiency vs nginx per scenario and system (1.0 = nginx; higher is better). */
export function svg(rows: readonly Row[]): string {
  const scenarios = [...new Set(rows.map((r) => r.scenario))];
  const systems = [...new Set(rows.map((r) => r.system))].filter((s) => s !== 'nginx');
  const bar = 14;
  const gap = 10;
  const left = 170;
  const width = 420;
  const top = 52;
  const max = Math.max(1.2, ...rows.map((r) => r.vsNginx?.cpuEfficiency ?? 0));
  const scale = (v: number) => (v / max) * width;
  const blockHeight = systems.length * bar + gap;
  const height = top + scenarios.length * blockHeight + 40;
  const parts = [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${left + width + 80}" height="${height}" font-family="sans-serif" font-size="11">`,
    `<text x="10" y="18" font-size="13" font-weight="bold">CPU efficiency vs nginx, same run (nginx µs/req ÷ system µs/req; 1.0 = nginx, higher is better)</text>`,
  ];
  scenarios.forEach((scenario, i) => {
    const y0 = top + i * blockHeight;
    parts.push(`<text x="${left - 8}" y="${y0 + (systems.length * bar) / 2 + 4}" text-anchor="end">${scenario}</text>`);
    systems.forEach((system, j) => {
      const value = rows.find((r) => r.scenario === scenario && r.system === system)?.vsNginx?.cpuEfficiency;
      if (value === undefined) return;
      const y = y0 + j * bar;
      parts.push(
        `<rect x="${left}" y="${y}" width="${scale(value).toFixed(1)}" height="${bar - 2}" fill="${COLORS[system]}"/>`,
        `<text x="${left + scale(value) + 4}" y="${y + bar - 4}">${value.toFixed(2)}</text>`,
      );
    });
  });
  parts.push(
    `<line x1="${left + scale(1)}" y1="${top - 6}" x2="${left + scale(1)}" y2="${height - 34}" stroke="#000" stroke-dasharray="4 3"/>`,
    `<text x="${left + scale(1)}" y="${top - 10}" text-anchor="middle">nginx</text>`,
  );
  systems.forEach((system, j) =>
    parts.push(
      `<rect x="${left + j * 110}" y="${height - 22}" width="10" height="10" fill="${COLORS[system]}"/><text x="${left + j * 110 + 14}" y="${height - 13}">${rows.find((r) => r.system === system)?.label ?? system}</text>`,
    ),
  );
  parts.push('</svg>');
  return `${parts.join('\n')}\n`;
}

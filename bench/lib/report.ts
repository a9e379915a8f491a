// From samples to the report: per scenario and system the medians over repetitions (min–max for rps and CPU),
// and every figure as a ratio to nginx measured in the same run. Markdown table, JSON and an SVG chart.
import { median, range } from './stats.ts';
import type { Sample, SystemName } from './types.ts';

export interface Row {
  scenario: string;
  system: SystemName;
  reps: number;
  rps?: number;
  rpsRange?: [number, number];
  p50Ms?: number;
  p99Ms?: number;
  cpuUsPerReq?: number;
  cpuRange?: [number, number];
  peakRssMb?: number;
  errors: number;
  resumed?: number;
  upstreamConns?: number;
  /** Ratios to nginx in the same scenario: rps and CPU efficiency (nginx µs ÷ this µs) are "higher is better". */
  vsNginx?: { rps?: number; cpuEfficiency?: number; p99?: number; peakRss?: number };
}

export function summarize(samples: readonly Sample[]): Row[] {
  const rows: Row[] = [];
  const keys = [...new Set(samples.map((s) => `${s.scenario}\0${s.system}`))];
  for (const key of keys) {
    const [scenario, system] = key.split('\0') as [string, SystemName];
    const mine = samples.filter((s) => s.scenario === scenario && s.system === system);
    rows.push({
      scenario,
      system,
      reps: mine.length,
      rps: median(mine.map((s) => s.rps)),
      rpsRange: range(mine.map((s) => s.rps)),
      p50Ms: median(mine.map((s) => s.p50Ms)),
      p99Ms: median(mine.map((s) => s.p99Ms)),
      cpuUsPerReq: median(mine.map((s) => s.cpuUsPerReq)),
      cpuRange: range(mine.map((s) => s.cpuUsPerReq)),
      peakRssMb: Math.max(...mine.map((s) => s.peakRssMb)),
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
    '| scenario | system | rps median (min–max) | p50 / p99 ms | CPU µs/req (min–max) | peak RSS MB | errors | rps ÷ nginx | CPU efficiency vs nginx | p99 ÷ nginx | RSS ÷ nginx |',
    '|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|',
  ];
  for (const r of rows) {
    const extra = [
      r.resumed !== undefined ? `${Math.round(r.resumed * 100)} % resumed` : '',
      r.upstreamConns !== undefined ? `${n(r.upstreamConns)} upstream conns` : '',
    ]
      .filter(Boolean)
      .join(', ');
    lines.push(
      `| ${r.scenario} | ${r.system}${extra ? ` (${extra})` : ''} | ${n(r.rps)} (${n(r.rpsRange?.[0])}–${n(r.rpsRange?.[1])}) | ${n(r.p50Ms, 2)} / ${n(r.p99Ms, 2)} | ${n(r.cpuUsPerReq)} (${n(r.cpuRange?.[0])}–${n(r.cpuRange?.[1])}) | ${n(r.peakRssMb)} | ${r.errors} | ${x(r.vsNginx?.rps)} | ${x(r.vsNginx?.cpuEfficiency)} | ${x(r.vsNginx?.p99)} | ${x(r.vsNginx?.peakRss)} |`,
    );
  }
  const legend = Object.entries(titles).map(([name, title]) => `- **${name}**: ${title}`);
  return `${lines.join('\n')}\n\nScenarios:\n${legend.join('\n')}\n\nCPU µs/req: user+system CPU of the system's processes (nginx master + workers; nginx-auth includes its auth service) over the measured window ÷ completed requests. CPU efficiency vs nginx = nginx's µs/req ÷ this system's (higher is better; 0.5× = twice nginx's CPU per request). Ratios come from medians of the same run.\n`;
}

const COLORS: Record<SystemName, string> = {
  nginx: '#888',
  gatehouse: '#1f77b4',
  'nginx-auth': '#ff7f0e',
  caddy: '#2ca02c',
  'gatehouse-baseline': '#9ecae1',
  'node-undici-https': '#9467bd',
  'node-undici-h2compat': '#c5b0d5',
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
      `<rect x="${left + j * 110}" y="${height - 22}" width="10" height="10" fill="${COLORS[system]}"/><text x="${left + j * 110 + 14}" y="${height - 13}">${system}</text>`,
    ),
  );
  parts.push('</svg>');
  return `${parts.join('\n')}\n`;
}

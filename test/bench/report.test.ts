// The foreign-load rule of the bench report: a window above the threshold is flagged in its row, and a run with any
// such window says at the top that it must not be published (bench/README.md, "Method").
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { foreignLoadSummary, markdown, summarize } from '../../bench/lib/report.ts';
import type { Sample } from '../../bench/lib/types.ts';

function sample(system: Sample['system'], rep: number, foreignLoadPct: number): Sample {
  return {
    scenario: 'h1-keepalive',
    system,
    label: system === 'gatehouse-baseline' ? 'gatehouse@main' : system,
    rep,
    requests: 1000,
    seconds: 1,
    errors: 0,
    p50Ms: 1,
    p99Ms: 2,
    rps: 1000,
    cpuUsPerReq: 50,
    busy: 0.05,
    peakRssMb: 30,
    windowRssMb: 25,
    foreignLoadPct,
    contended: foreignLoadPct > 10,
  };
}

test('bench report: foreign load beside every row, contended windows flagged, the run marked unpublishable', () => {
  const samples = [
    sample('nginx', 0, 3),
    sample('nginx', 1, 25),
    sample('gatehouse-baseline', 0, 4),
    sample('gatehouse-baseline', 1, 6),
  ];
  const table = markdown(summarize(samples, 10), { 'h1-keepalive': 'keep-alive' });
  assert.match(table, /\| h1-keepalive \| nginx \|.*\| 14 \(25\) ⚠ contended \(1 of 2\) \|/);
  assert.match(table, /\| h1-keepalive \| gatehouse@main \|.*\| 25 \/ 30 \| 0 \| 5 \(6\) \|/);
  const contended = foreignLoadSummary(samples, 10);
  assert.equal(contended.facts.publishable, false);
  assert.equal(contended.facts.contendedWindows, 1);
  assert.match(
    contended.text,
    /^⚠ CONTENDED RUN, DO NOT PUBLISH: 1 of 4 measured windows .* above 10 % of a core \(highest 25 %\)/,
  );

  // The threshold is the caller's (--max-foreign-load).
  assert.doesNotMatch(markdown(summarize(samples, 30), {}), /⚠ contended \(/);
  const quiet = foreignLoadSummary(samples, 30);
  assert.equal(quiet.facts.publishable, true);
  assert.match(
    quiet.text,
    /^Foreign load stayed at or below 30 % of a core in all 4 measured windows \(highest 25 %\)/,
  );
});

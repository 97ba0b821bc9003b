// The bench's charts: a Vega-Lite spec and its rows drawn to SVG in Node
// (vega-lite's compile, vega's View.toSVG(), no browser), saved beside the
// document as JSON and redrawn from it; the lag ECDF from raw samples; the
// charts drawn from the committed tables of docs/benchmarks.md.
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, unlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, test } from 'node:test';
import type { TopLevelSpec } from 'vega-lite';
import { lagEcdfChart } from '../../bench/chart-specs.ts';
import { chartMarkdown, chartPaths, redrawCharts, renderSvg, saveChart, savedCharts, type Chart } from '../../bench/charts.ts';
import type { LagRow } from '../../bench/lag.ts';
import { chartsFromTables, secondsOf, sectionTables } from '../../bench/table-charts.ts';

const SPEC: TopLevelSpec = {
  data: { name: 'rows' },
  mark: 'point',
  encoding: { x: { field: 'seconds', type: 'quantitative', title: 'switch time (s)' }, y: { field: 'system', type: 'nominal' } },
};
const ROWS = [
  { system: 'standby', seconds: 0.57 },
  { system: 'standby', seconds: 0.63 },
  { system: 'haproxy', seconds: 1.26 },
];

/** The symbols (points) vega drew: one path each inside the symbol marks' group. */
function symbols(svg: string): number {
  const group = /<g class="mark-symbol role-mark[^"]*"[^>]*>([\s\S]*?)<\/g>/.exec(svg);
  return group ? (group[1]!.match(/<path /g) ?? []).length : 0;
}

describe('bench charts', () => {
  const dirs: string[] = [];
  after(() => {
    for (const d of dirs) rmSync(d, { recursive: true, force: true });
  });

  test('a spec and its rows render to an SVG document: one point per row, the axis titled, the same bytes twice', async () => {
    const svg = await renderSvg(SPEC, ROWS);
    assert.match(svg, /^<svg xmlns="http:\/\/www\.w3\.org\/2000\/svg"[^>]* width="\d+" height="\d+"/);
    assert.match(svg, /switch time \(s\)/);
    assert.match(svg, />haproxy</);
    assert.equal(symbols(svg), 3);
    assert.equal(await renderSvg(SPEC, ROWS), svg, 'deterministic: a redraw changes no byte');
    assert.equal(symbols(await renderSvg(SPEC, ROWS.slice(0, 1))), 1, 'the rows given, not a spec of its own');
  });

  test('a saved chart keeps its spec and rows as JSON beside its SVG; a redraw from the JSON alone draws the same SVG', async () => {
    const docs = mkdtempSync(join(tmpdir(), 'standby-charts-'));
    dirs.push(docs);
    const chart: Chart = { name: 'switch', title: 'Switch times', spec: SPEC, rows: ROWS, caption: 'three trials', source: 'run' };
    const markdown = await saveChart(docs, 'failover', chart);
    assert.equal(markdown, '![Switch times](bench/failover-switch.svg)\n\n*three trials*');
    const paths = chartPaths(docs, 'failover', 'switch');
    const drawn = readFileSync(paths.svg, 'utf8');
    const saved = JSON.parse(readFileSync(paths.json, 'utf8')) as Record<string, unknown>;
    assert.deepEqual(saved, { case: 'failover', ...chart });
    unlinkSync(paths.svg);
    const redrawn = await redrawCharts(docs);
    assert.deepEqual(redrawn.map((c) => `${c.case}-${c.name}`), ['failover-switch']);
    assert.equal(readFileSync(paths.svg, 'utf8'), drawn);
    assert.equal(savedCharts(docs).length, 1);
  });

  test('chart names become file names: only lowercase words and dashes', () => {
    assert.throws(() => chartPaths('/docs', 'failover', '../../etc/x'), /lowercase words joined by dashes/);
    assert.throws(() => chartPaths('/docs', 'Fail over', 'switch'), /lowercase words joined by dashes/);
    assert.equal(chartMarkdown('editor', { name: 'times', title: 'a [title]', caption: 'a *caption*' }), '![a  title ](bench/editor-times.svg)\n\n*a \\*caption\\**');
  });

  test('the lag ECDF: exact quantiles of the raw samples, at most 40 per line, files that never landed keep the line below 1', async () => {
    const lags = Array.from({ length: 200 }, (_, i) => 100 + i * 5); // 100 .. 1095 ms
    const rows: LagRow[] = [
      { system: 'agent', workload: 'trickle (200 files, one every 20 ms)', tree: 'fresh', expected: 200, landed: 200, lags, note: '' },
      { system: 'one-shot', workload: 'trickle (200 files, one every 20 ms)', tree: 'fresh', expected: 200, landed: 150, lags: lags.slice(0, 150), note: '' },
      { system: 'lsyncd', workload: 'trickle (200 files, one every 20 ms)', tree: 'fresh', expected: 200, landed: 0, lags: [], note: '', skipped: 'lsyncd is not installed' },
      { system: 'agent', workload: 'one 200 MiB file', tree: 'fresh', expected: 1, landed: 1, lags: [1200], note: '' },
      { system: 'agent', workload: 'trickle (200 files, one every 20 ms)', tree: '50k files', expected: 200, landed: 200, lags, note: '' },
    ];
    const chart = lagEcdfChart(rows, 'a test')!;
    const line = (system: string, workload: string) => chart.rows.filter((r) => r['system'] === system && r['workload'] === workload);
    const agent = line('agent', 'trickle');
    assert.ok(agent.length <= 41 && agent.length >= 30, `${agent.length} points`);
    assert.deepEqual(agent.at(-1), { system: 'agent', workload: 'trickle', lagS: 1.095, landed: 1 });
    assert.deepEqual(agent[0], { system: 'agent', workload: 'trickle', lagS: 0.1, landed: 1 / 200 });
    for (const p of agent) assert.ok(lags.includes(Math.round((p['lagS'] as number) * 1000)), 'a sample, not an interpolation');
    assert.equal(line('one-shot', 'trickle').at(-1)!['landed'], 0.75, '150 of 200 landed');
    assert.equal(line('lsyncd', 'trickle').length, 0, 'a skipped system is not drawn');
    assert.equal(chart.rows.filter((r) => String(r['workload']).startsWith('one 200')).length, 0, 'one file is no distribution');
    assert.equal(line('agent', 'trickle, 50k files').length, agent.length);
    assert.equal(chart.source, 'run');
    const svg = await renderSvg(chart.spec, chart.rows);
    assert.match(svg, /trickle, 50k files/);
    assert.match(svg, /share of the workload's files landed/);
  });

  test("the committed tables give the three cases' charts, each saying it is drawn from the table", async () => {
    const doc = readFileSync(new URL('../../docs/benchmarks.md', import.meta.url), 'utf8');
    const charts = chartsFromTables(doc);
    assert.deepEqual(charts.map((c) => `${c.case}-${c.chart.name}`), ['sync-lag-lag', 'failover-switch', 'editor-times']);
    for (const { chart } of charts) {
      assert.equal(chart.source, 'table');
      assert.match(chart.caption, /^Drawn from the (table's percentiles|per-trial figures the table lists) \(the run of \d{4}-\d\d-\d\dT/);
      assert.ok(chart.rows.length > 0);
      for (const r of chart.rows) assert.ok(Number.isFinite(r['seconds']), JSON.stringify(r));
      assert.match(await renderSvg(chart.spec, chart.rows), /^<svg /);
    }
  });

  test('a section\'s tables are read back as the runner wrote them', () => {
    const doc = [
      '<!-- bench:failover -->', '## failover', '', 'Run 2026-01-02T03:04:05Z on:', '', '- cpu: x', '',
      '### GPU death', '', '| system | failure | switch p50 | switch p95 | switch p99 | switch max |', '| --- | --- | --- | --- | --- | --- |',
      '| Standby \\| proxy | kill | 0.57 s | 0.63 s | 0.63 s | timeout |', '', '- a note', '<!-- /bench:failover -->',
    ].join('\n');
    const { when, tables } = sectionTables(doc, 'failover');
    assert.equal(when, '2026-01-02T03:04:05Z');
    assert.equal(tables.length, 1);
    assert.deepEqual(tables[0]!.rows, [['Standby | proxy', 'kill', '0.57 s', '0.63 s', '0.63 s', 'timeout']]);
    assert.deepEqual([secondsOf('0.57 s'), secondsOf('timeout'), secondsOf('-'), secondsOf('7.06 s after the click')], [0.57, undefined, undefined, 7.06]);
    const [c] = chartsFromTables(doc);
    assert.deepEqual(c!.chart.rows.map((r) => r['stat']), ['p50', 'p95', 'p99'], 'a timeout is no figure');
  });
});

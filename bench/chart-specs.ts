// The benchmark charts themselves: which figures each case draws and how
// (Vega-Lite specs and their rows), from a run's raw figures or, until a run
// replaces them, from the percentiles of a committed table (table-charts.ts).
// bench/charts.ts draws and saves them.
import type { TopLevelSpec } from 'vega-lite';
import type { Chart, ChartRow } from './charts.ts';
import type { LagRow } from './lag.ts';

const SCHEMA = 'https://vega.github.io/schema/vega-lite/v6.json';
/** at most this many points per ECDF line: exact quantiles of the raw samples, few enough for a small JSON beside the doc */
const ECDF_POINTS = 40;
// labelLimit 0: no cut labels (vega measures text without a canvas by an estimate that runs long)
const FONT = { config: { font: 'sans-serif', view: { stroke: '#ddd' }, axis: { labelFontSize: 11, titleFontSize: 11, labelLimit: 0 }, legend: { labelFontSize: 11, titleFontSize: 11, labelLimit: 0 } } } as const;

/** The distinct values of `key` in the order they first appear: facets and rows keep the case's order, not the alphabet's. */
function inOrder(rows: readonly ChartRow[], key: string): string[] {
  return [...new Set(rows.map((r) => String(r[key])))];
}

/** A workload's short name: its label before the parenthesis ("trickle", "burst", "one 200 MiB file"), with the tree when not fresh. */
export function workloadName(workload: string, tree: string): string {
  const short = workload.split(' (')[0]!;
  return tree === 'fresh' ? short : `${short}, ${tree}`;
}

/** A small chart per workload, two to a row, each with its own x scale (a 200 MiB file's lag is not a trickle's). */
function byWorkload(rows: readonly ChartRow[]) {
  return {
    data: { name: 'rows' },
    facet: { field: 'workload', type: 'nominal', title: null, sort: inOrder(rows, 'workload'), header: { labelFontSize: 12, labelFontWeight: 'bold' } },
    columns: 2,
    resolve: { scale: { x: 'independent' } },
  } as const;
}

/**
 * Lag distributions as ECDFs: for each system and each workload of many files, the share of the workload's
 * files on the standby (y) within a lag (x), from the raw samples. Files that never landed keep a line below 1.
 */
export function lagEcdfChart(rows: readonly LagRow[], runLabel: string): Chart | undefined {
  const data: ChartRow[] = [];
  for (const r of rows) {
    if (r.skipped || r.expected < 2 || r.lags.length === 0) continue;
    const sorted = [...r.lags].sort((a, b) => a - b);
    const n = sorted.length;
    const k = Math.min(n, ECDF_POINTS);
    let last = -1;
    for (let i = 0; i <= k; i++) {
      const idx = Math.max(0, Math.ceil((i / k) * n) - 1);
      if (idx === last) continue;
      last = idx;
      data.push({ system: r.system, workload: workloadName(r.workload, r.tree), lagS: Math.round(sorted[idx]!) / 1000, landed: (idx + 1) / r.expected });
    }
  }
  if (data.length === 0) return undefined;
  const spec: TopLevelSpec = {
    $schema: SCHEMA,
    ...FONT,
    ...byWorkload(data),
    spec: {
      width: 300,
      height: 170,
      mark: { type: 'line', interpolate: 'step-after', point: { size: 12 } },
      encoding: {
        x: { field: 'lagS', type: 'quantitative', title: 'lag from the end of the write (s)' },
        y: { field: 'landed', type: 'quantitative', title: "share of the workload's files landed", axis: { format: '%' }, scale: { domain: [0, 1] } },
        color: { field: 'system', type: 'nominal', title: 'system', sort: inOrder(data, 'system'), legend: { orient: 'bottom', columns: 1 } },
      },
    },
  };
  return {
    name: 'lag',
    title: 'Write-to-standby lag distributions (ECDF): the agent against lsyncd, one-shot rsync and an rsync loop',
    spec,
    rows: data,
    caption: `Drawn from the raw lag samples of ${runLabel}: each line is the share of a workload's files on the standby (y) within a lag (x), at up to ${ECDF_POINTS} exact quantiles per line; further left and higher is better.`,
    source: 'run',
  };
}

/** One percentile of a lag table's row (table-charts.ts reads them from docs/benchmarks.md). */
export interface LagPercentile {
  system: string;
  workload: string;
  stat: 'p50' | 'p95' | 'p99' | 'max';
  seconds: number;
}

/** Lag percentiles per system and workload, as dots: what a table holds, until a run draws the distributions. */
export function lagPercentilesChart(points: readonly LagPercentile[], from: string): Chart {
  const rows = points.map((p) => ({ ...p }));
  const systems = inOrder(rows, 'system');
  const spec: TopLevelSpec = {
    $schema: SCHEMA,
    ...FONT,
    ...byWorkload(rows),
    spec: {
      width: 300,
      height: 130,
      layer: [
        { mark: { type: 'rule', color: '#bbb' }, encoding: { x: { aggregate: 'min', field: 'seconds', type: 'quantitative' }, x2: { aggregate: 'max', field: 'seconds' }, y: { field: 'system', type: 'nominal', sort: systems, title: null } } },
        {
          mark: { type: 'point', filled: true, size: 45 },
          encoding: {
            x: { field: 'seconds', type: 'quantitative', title: 'lag from the end of the write (s)' },
            y: { field: 'system', type: 'nominal', title: null, sort: systems },
            shape: { field: 'stat', type: 'nominal', title: 'percentile', sort: ['p50', 'p95', 'p99', 'max'] },
            color: { field: 'stat', type: 'nominal', title: 'percentile', sort: ['p50', 'p95', 'p99', 'max'] },
          },
        },
      ],
    },
  };
  return {
    name: 'lag',
    title: 'Write-to-standby lag per system and workload: p50, p95, p99 and max',
    spec,
    rows,
    caption: `Drawn from the table's percentiles (${from}), not from raw samples: the next run of the case draws the whole distributions.`,
    source: 'table',
  };
}

/** A switch time of one trial (or a table's percentile of them, `stat`). */
export interface SwitchPoint {
  system: string;
  seconds: number;
  /** 'trial' for a raw figure; p50/p95/p99/max when drawn from a table */
  stat: string;
}

/** Switch times from the failure to the first standby answer, per system, beside the target. */
export function switchTimesChart(points: readonly SwitchPoint[], targetS: number, caption: string, source: Chart['source']): Chart {
  const raw = source === 'run';
  const rows = points.map((p) => ({ ...p }));
  const systems = inOrder(rows, 'system');
  const spec: TopLevelSpec = {
    $schema: SCHEMA,
    ...FONT,
    data: { name: 'rows' },
    width: 520,
    height: { step: 34 },
    layer: [
      {
        mark: raw ? { type: 'tick', thickness: 2, opacity: 0.7 } : { type: 'point', filled: true, size: 50 },
        encoding: {
          x: { field: 'seconds', type: 'quantitative', title: 'switch: from the failure to the first answer from the standby (s)' },
          y: { field: 'system', type: 'nominal', title: null, sort: systems },
          ...(raw ? {} : { shape: { field: 'stat', type: 'nominal', title: 'percentile', sort: ['p50', 'p95', 'p99', 'max'] }, color: { field: 'stat', type: 'nominal', title: 'percentile', sort: ['p50', 'p95', 'p99', 'max'] } }),
        },
      },
      ...(raw ? [{ mark: { type: 'tick', color: 'black', thickness: 3, size: 26 }, encoding: { x: { aggregate: 'median', field: 'seconds', type: 'quantitative' }, y: { field: 'system', type: 'nominal', sort: systems } } } as const] : []),
      // one row of data of their own: drawn once, not once per trial
      { data: { values: [{}] }, mark: { type: 'rule', strokeDash: [4, 3], color: '#c33' }, encoding: { x: { datum: targetS } } },
      { data: { values: [{}] }, mark: { type: 'text', color: '#c33', align: 'left', dx: 3, dy: 2, baseline: 'top' }, encoding: { x: { datum: targetS }, y: { value: 0 }, text: { value: `target ${targetS} s (Standby)` } } },
    ],
  } as TopLevelSpec;
  return {
    name: 'switch',
    title: 'Failover switch times: the Standby proxy against HAProxy',
    spec,
    rows,
    caption,
    source,
  };
}

/** One trial of the editor case: when the developer saw something, and when a working workbench was back. */
export interface EditorPoint {
  system: string;
  measure: 'shown' | 'back';
  trial: number;
  seconds: number;
}

/** The editor's overlay (or dialog) and workbench-back times, per trial and row. */
export function editorTimesChart(points: readonly EditorPoint[], caption: string, source: Chart['source']): Chart {
  const measures = { shown: 'seen first (overlay, or the dialog)', back: 'working workbench back (plain proxy: after the click)' };
  const rows = points.map((p) => ({ ...p }));
  const systems = inOrder(rows, 'system');
  const spec: TopLevelSpec = {
    $schema: SCHEMA,
    ...FONT,
    data: { name: 'rows' },
    width: 520,
    height: { step: 40 },
    transform: [{ calculate: `datum.measure === 'shown' ? '${measures.shown}' : '${measures.back}'`, as: 'what' }],
    layer: [
      {
        mark: { type: 'point', filled: true, size: 55, opacity: 0.75 },
        encoding: {
          x: { field: 'seconds', type: 'quantitative', title: 'from the SIGKILL of the GPU (s)' },
          y: { field: 'system', type: 'nominal', title: null, sort: systems },
          color: { field: 'what', type: 'nominal', title: null, sort: [measures.shown, measures.back], legend: { orient: 'bottom', columns: 1 } },
        },
      },
      {
        mark: { type: 'tick', color: 'black', thickness: 2, size: 28 },
        encoding: { x: { aggregate: 'median', field: 'seconds', type: 'quantitative' }, y: { field: 'system', type: 'nominal', sort: systems }, detail: { field: 'what', type: 'nominal' } },
      },
    ],
  } as TopLevelSpec;
  return {
    name: 'times',
    title: 'The editor when the GPU dies: the overlay and the workbench back, per trial',
    spec,
    rows,
    caption,
    source,
  };
}

// A benchmark case's figures as SVG charts: a Vega-Lite spec and its rows,
// compiled by vega-lite and drawn by vega's View.toSVG() in Node (no browser,
// no canvas). Each chart is kept beside the document as
// docs/bench/<case>-<chart>.json (spec, rows, caption: what the SVG is drawn
// from) and docs/bench/<case>-<chart>.svg, which docs/benchmarks.md embeds in
// the case's section; `npm run bench -- charts` redraws every SVG from its
// JSON without running anything.
import { existsSync, mkdirSync, readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { View, parse } from 'vega';
import { compile, type TopLevelSpec } from 'vega-lite';

/** A row of a chart's data: what vega-lite's inline `values` take. */
export type ChartRow = Record<string, string | number | null>;

export interface Chart {
  /** the file name's part after the case's: docs/bench/<case>-<name>.svg (lowercase words and dashes) */
  name: string;
  /** the image's alt text, and what the chart shows */
  title: string;
  /** the Vega-Lite spec; its data is `rows`, put in at render time (any `data` it has is replaced) */
  spec: TopLevelSpec;
  rows: ChartRow[];
  /** printed under the image: what it is drawn from (raw samples of a run, or a table's percentiles) */
  caption: string;
  /** 'run': drawn from a run's raw figures; 'table': from a committed table (a run replaces it) */
  source: 'run' | 'table';
}

/** What docs/bench/<case>-<name>.json holds. */
export interface SavedChart extends Chart {
  case: string;
}

const NAME = /^[a-z0-9]+(?:-[a-z0-9]+)*$/;

function checkName(what: string, name: string): void {
  if (!NAME.test(name)) throw new Error(`a chart's ${what} must be lowercase words joined by dashes (it names a file), got ${JSON.stringify(name)}`);
}

/** The chart drawn as an SVG document (deterministic for the same spec and rows). */
export async function renderSvg(spec: TopLevelSpec, rows: readonly ChartRow[]): Promise<string> {
  const withData = { ...spec, data: { values: rows.map((r) => ({ ...r })) } } as TopLevelSpec;
  const view = new View(parse(compile(withData).spec), { renderer: 'none' });
  try {
    return await view.toSVG();
  } finally {
    view.finalize();
  }
}

/** Where a case's chart lives: its files, and the image link from docs/benchmarks.md. */
export function chartPaths(docsDir: string, caseName: string, name: string): { svg: string; json: string; link: string } {
  checkName('case', caseName);
  checkName('name', name);
  const base = `${caseName}-${name}`;
  return { svg: join(docsDir, 'bench', `${base}.svg`), json: join(docsDir, 'bench', `${base}.json`), link: `bench/${base}.svg` };
}

/** The markdown that embeds the chart in its case's section. */
export function chartMarkdown(caseName: string, chart: Pick<Chart, 'name' | 'title' | 'caption'>): string {
  const { link } = chartPaths('.', caseName, chart.name);
  return `![${chart.title.replaceAll(/[[\]\n]/g, ' ')}](${link})\n\n*${chart.caption.replaceAll('*', '\\*').replaceAll('\n', ' ')}*`;
}

/** Draws the chart and writes its JSON and SVG under docs/bench/; returns the markdown that embeds it. */
export async function saveChart(docsDir: string, caseName: string, chart: Chart): Promise<string> {
  const paths = chartPaths(docsDir, caseName, chart.name);
  const svg = await renderSvg(chart.spec, chart.rows);
  mkdirSync(join(docsDir, 'bench'), { recursive: true });
  writeFileSync(paths.json, savedJson({ case: caseName, ...chart }));
  writeFileSync(paths.svg, svg + '\n');
  return chartMarkdown(caseName, chart);
}

/** The saved chart as JSON: the spec indented, one row a line (a diff of a rerun reads row by row). */
export function savedJson(saved: SavedChart): string {
  const { rows, ...rest } = saved;
  const head = JSON.stringify(rest, null, 1);
  return `${head.slice(0, -2)},\n "rows": [\n${rows.map((r) => `  ${JSON.stringify(r)}`).join(',\n')}\n ]\n}\n`;
}

/** Every chart saved under docs/bench/, in file-name order. */
export function savedCharts(docsDir: string): SavedChart[] {
  const dir = join(docsDir, 'bench');
  if (!existsSync(dir)) return [];
  return readdirSync(dir)
    .filter((f) => f.endsWith('.json'))
    .sort()
    .map((f) => {
      const saved = JSON.parse(readFileSync(join(dir, f), 'utf8')) as SavedChart;
      if (typeof saved.case !== 'string' || typeof saved.name !== 'string' || !Array.isArray(saved.rows) || typeof saved.spec !== 'object') {
        throw new Error(`${join(dir, f)} is not a saved chart (case, name, spec, rows): remove it or run its case again`);
      }
      if (f !== `${saved.case}-${saved.name}.json`) throw new Error(`${join(dir, f)} says it is ${saved.case}-${saved.name}: rename it or run its case again`);
      return saved;
    });
}

/** Redraws every saved chart's SVG from its JSON; returns them. */
export async function redrawCharts(docsDir: string): Promise<SavedChart[]> {
  const charts = savedCharts(docsDir);
  for (const c of charts) writeFileSync(chartPaths(docsDir, c.case, c.name).svg, (await renderSvg(c.spec, c.rows)) + '\n');
  return charts;
}

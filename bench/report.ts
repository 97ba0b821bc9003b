// What a benchmark case returns, and how the runner shows it: aligned text for
// the terminal, markdown for docs/benchmarks.md. Figures arrive already
// formatted as strings so the text and the markdown say exactly the same.
// Charts (bench/charts.ts) are drawn from the raw figures beside them.
import type { Chart } from './charts.ts';

export interface Table {
  title: string;
  columns: string[];
  rows: string[][];
  /** lines printed under the table (how it was measured, caveats) */
  notes?: string[];
}

export interface CaseResult {
  tables: Table[];
  /** lines printed under all the case's tables */
  notes?: string[];
  /** the case's figures as charts: drawn to docs/bench/<case>-<chart>.svg, their data kept as .json, embedded after the tables */
  charts?: Chart[];
}

/** A case is `bench/<name>.ts` exporting `run`. */
export type BenchCase = () => Promise<CaseResult>;

/** Milliseconds as seconds with two decimals ("1.23 s"), or the reason there is no figure. */
export function seconds(ms: number | undefined, missing = '-'): string {
  if (ms === undefined || !Number.isFinite(ms)) return missing;
  return `${(ms / 1000).toFixed(2)} s`;
}

export function mebibytes(bytes: number | undefined, missing = '-'): string {
  if (bytes === undefined || !Number.isFinite(bytes)) return missing;
  return `${(bytes / 1024 / 1024).toFixed(1)} MiB`;
}

/** Decimal megabytes (the unit the targets use: "RSS at most 250 MB"). */
export function megabytes(bytes: number | undefined, missing = '-'): string {
  if (bytes === undefined || !Number.isFinite(bytes)) return missing;
  return `${(bytes / 1e6).toFixed(1)} MB`;
}

export function percent(fraction: number | undefined, missing = '-'): string {
  if (fraction === undefined || !Number.isFinite(fraction)) return missing;
  return `${(fraction * 100).toFixed(fraction < 0.1 ? 2 : 1)} %`;
}

/** The nearest-rank percentile of an unsorted list; undefined for an empty one. */
export function percentile(values: number[], p: number): number | undefined {
  if (values.length === 0) return undefined;
  const sorted = [...values].sort((a, b) => a - b);
  const rank = Math.min(sorted.length, Math.max(1, Math.ceil((p / 100) * sorted.length)));
  return sorted[rank - 1];
}

export function textTable(table: Table): string {
  const widths = table.columns.map((c, i) => Math.max(c.length, ...table.rows.map((r) => (r[i] ?? '').length)));
  const line = (cells: string[]): string => cells.map((c, i) => c.padEnd(widths[i] ?? 0)).join('  ').trimEnd();
  const out = [table.title, line(table.columns), widths.map((w) => '-'.repeat(w)).join('  '), ...table.rows.map(line)];
  for (const note of table.notes ?? []) out.push(`  ${note}`);
  return out.join('\n');
}

function cell(text: string): string {
  return text.replaceAll('|', '\\|').replaceAll('\n', ' ');
}

export function markdownTable(table: Table, heading = '###'): string {
  const out = [`${heading} ${table.title}`, ''];
  out.push(`| ${table.columns.map(cell).join(' | ')} |`);
  out.push(`| ${table.columns.map(() => '---').join(' | ')} |`);
  for (const row of table.rows) out.push(`| ${table.columns.map((_, i) => cell(row[i] ?? '')).join(' | ')} |`);
  if (table.notes?.length) {
    out.push('');
    for (const note of table.notes) out.push(`- ${note}`);
  }
  return out.join('\n');
}

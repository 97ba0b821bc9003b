// Charts drawn from the tables already in docs/benchmarks.md, for cases whose
// raw figures were not kept: the percentiles a table holds (sync-lag,
// failover) or the per-trial figures it lists (editor). Each is labelled as
// drawn from the table, and the case's next run replaces it with one drawn
// from its raw figures (`npm run bench -- charts --from-tables` never
// overwrites those).
import { editorTimesChart, lagPercentilesChart, switchTimesChart, type EditorPoint, type LagPercentile, type SwitchPoint } from './chart-specs.ts';
import type { Chart } from './charts.ts';
import type { Table } from './report.ts';

/** A generated section's tables (`### title`, a header row, a separator, rows), cells unescaped. */
export function sectionTables(doc: string, caseName: string): { when: string | undefined; tables: Table[] } {
  const m = new RegExp(`<!-- bench:${caseName} -->\\n([\\s\\S]*?)\\n<!-- /bench:${caseName} -->`).exec(doc);
  if (!m) return { when: undefined, tables: [] };
  const body = m[1]!;
  const when = /^Run (\S+) on:/m.exec(body)?.[1];
  const tables: Table[] = [];
  let title = '';
  let current: Table | undefined;
  for (const line of body.split('\n')) {
    if (line.startsWith('### ')) {
      title = line.slice(4).trim();
      current = undefined;
      continue;
    }
    if (!line.startsWith('|')) {
      current = undefined;
      continue;
    }
    const cells = splitRow(line);
    if (!current) {
      current = { title, columns: cells, rows: [] };
      tables.push(current);
    } else if (!cells.every((c) => /^-+$/.test(c))) current.rows.push(cells);
  }
  return { when, tables };
}

function splitRow(line: string): string[] {
  const inner = line.trim().replace(/^\|/, '').replace(/\|$/, '');
  return inner.split(/(?<!\\)\|/).map((c) => c.trim().replaceAll('\\|', '|'));
}

/** "1.23 s" as seconds; undefined for "-", "timeout" and anything else. */
export function secondsOf(cell: string | undefined): number | undefined {
  const m = /^(\d+(?:\.\d+)?) s\b/.exec(cell?.trim() ?? '');
  return m ? Number(m[1]) : undefined;
}

function column(t: Table, name: string): number {
  const i = t.columns.indexOf(name);
  if (i < 0) throw new Error(`the table "${t.title}" has no column "${name}" (columns: ${t.columns.join(', ')})`);
  return i;
}

function runOf(when: string | undefined): string {
  return when ? `the run of ${when}` : 'the committed run';
}

function syncLag(tables: Table[], when: string | undefined): Chart | undefined {
  const points: LagPercentile[] = [];
  for (const t of tables.filter((x) => x.columns.includes('p99') && x.columns.includes('workload'))) {
    const tree = /already holds ([\d,]+) files/.exec(t.title)?.[1];
    for (const row of t.rows) {
      const workload = row[column(t, 'workload')]!.split(' (')[0]! + (tree ? `, ${tree} files` : '');
      for (const stat of ['p50', 'p95', 'p99', 'max'] as const) {
        const s = secondsOf(row[column(t, stat)]);
        if (s !== undefined) points.push({ system: row[column(t, 'system')]!, workload, stat, seconds: s });
      }
    }
  }
  return points.length ? lagPercentilesChart(points, `${runOf(when)}`) : undefined;
}

function failover(tables: Table[], when: string | undefined): Chart | undefined {
  const t = tables.find((x) => x.columns.includes('switch p50'));
  if (!t) return undefined;
  const points: SwitchPoint[] = [];
  for (const row of t.rows) {
    const system = `${row[column(t, 'system')]}: ${row[column(t, 'failure')]}`;
    for (const [stat, col] of [['p50', 'switch p50'], ['p95', 'switch p95'], ['p99', 'switch p99'], ['max', 'switch max']] as const) {
      const s = secondsOf(row[column(t, col)]);
      if (s !== undefined) points.push({ system, stat, seconds: s });
    }
  }
  if (!points.length) return undefined;
  return switchTimesChart(points, 2, `Drawn from the table's percentiles (${runOf(when)}), not from the trials: the next run of the case draws every trial.`, 'table');
}

/** The editor table's rows, named short. */
function editorSystem(label: string): string {
  if (label.startsWith('the same, a warm browser')) return 'Standby proxy, warm browser';
  if (label.startsWith('Standby proxy')) return 'Standby proxy, fresh browser';
  return label.split(' (')[0]!;
}

function editor(tables: Table[], when: string | undefined): Chart | undefined {
  const t = tables.find((x) => x.columns.includes('seen at (median)'));
  if (!t) return undefined;
  // each median column is followed by its trials' list
  const shownAt = column(t, 'seen at (median)') + 1;
  const backAt = column(t, 'working workbench back (median)') + 1;
  const points: EditorPoint[] = [];
  for (const row of t.rows) {
    const system = editorSystem(row[0]!);
    for (const [measure, at] of [['shown', shownAt], ['back', backAt]] as const) {
      (row[at] ?? '').split(',').forEach((cell, i) => {
        const s = secondsOf(cell);
        if (s !== undefined) points.push({ system, measure, trial: i + 1, seconds: s });
      });
    }
  }
  if (!points.length) return undefined;
  return editorTimesChart(points, `Drawn from the per-trial figures the table lists (${runOf(when)}); a black tick is the median; trials with no figure ("-") are left out.`, 'table');
}

/** The charts the committed tables of `doc` give, per case. */
export function chartsFromTables(doc: string): { case: string; chart: Chart }[] {
  const out: { case: string; chart: Chart }[] = [];
  const draw: [string, (t: Table[], when: string | undefined) => Chart | undefined][] = [['sync-lag', syncLag], ['failover', failover], ['editor', editor]];
  for (const [name, f] of draw) {
    const { when, tables } = sectionTables(doc, name);
    const chart = tables.length ? f(tables, when) : undefined;
    if (chart) out.push({ case: name, chart });
  }
  return out;
}

// docs/prometheus/standby-alerts.yml, the alert rules docs/operations.md
// offers: the three alerts the issue asks for, each naming only metrics a
// live proxy's /_standby/metrics really exports (a renamed metric would leave
// an alert that never fires). The file is parsed as YAML (the yaml package),
// as Prometheus reads rule files.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { after, before, describe, test } from 'node:test';
import { parse } from 'yaml';
import { exportedSeriesNames } from '../fixtures/prometheus-text.ts';
import { ADMIN_TOKEN, startProxyWithBackends, type ProxyWithBackends } from '../fixtures/proxy.ts';

const RULES = new URL('../../docs/prometheus/standby-alerts.yml', import.meta.url);

interface Rule {
  alert: string;
  expr: string;
  for: string | undefined;
}

/** The rules of the file's one group, parsed as YAML; a file that is not `groups: [{name, rules}]` fails here. */
function rules(text: string): Rule[] {
  const doc = parse(text) as { groups?: { name?: string; rules?: { alert?: unknown; expr?: unknown; for?: unknown }[] }[] };
  assert.equal(doc.groups?.length, 1, 'one group of rules');
  assert.equal(doc.groups[0]!.name, 'standby');
  return (doc.groups[0]!.rules ?? []).map((r) => {
    assert.equal(typeof r.alert, 'string', 'each rule names its alert');
    assert.equal(typeof r.expr, 'string', `${String(r.alert)} has an expression`);
    return { alert: r.alert as string, expr: (r.expr as string).trim(), for: r.for === undefined ? undefined : String(r.for) };
  });
}

const PROMQL_WORDS = new Set(['and', 'or', 'unless', 'bool', 'offset', 'by', 'without', 'on', 'ignoring', 'group_left', 'group_right', 'inf', 'nan']);

/** The metric names a PromQL expression reads: identifiers outside label matchers, ranges and grouping lists that are not functions or keywords. */
export function metricNames(expr: string): string[] {
  const bare = expr
    .replace(/"(?:[^"\\]|\\.)*"/g, '""')
    .replace(/\{[^}]*\}/g, ' ')
    .replace(/\[[^\]]*\]/g, ' ')
    .replace(/\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)/g, ' ');
  const names: string[] = [];
  for (const m of bare.matchAll(/([a-zA-Z_:][a-zA-Z0-9_:]*)(\s*\()?/g)) {
    if (m[2] || PROMQL_WORDS.has(m[1]!.toLowerCase())) continue;
    names.push(m[1]!);
  }
  return names;
}

describe('the alert rules in docs/prometheus/standby-alerts.yml', () => {
  let world: ProxyWithBackends;
  let exported: Set<string>;
  before(async () => {
    world = await startProxyWithBackends({ fence: () => Promise.resolve({ waitedMs: 0, killed: 0 }) });
    const r = await fetch(`${world.proxy.url}/_standby/metrics`, { headers: { authorization: `Bearer ${ADMIN_TOKEN}` }, signal: AbortSignal.timeout(5_000) });
    assert.equal(r.status, 200);
    exported = exportedSeriesNames(await r.text());
  });
  after(async () => {
    await world?.close();
  });

  test('the reader of expressions finds metric names, not functions, keywords or labels', () => {
    assert.deepEqual(metricNames('max by (instance, host) (standby_sync_lag_seconds) > 10'), ['standby_sync_lag_seconds']);
    assert.deepEqual(metricNames('standby_recovery_step{step="gave-up"} == 1 or increase(standby_recovery_failures_total[30m]) > 0'), ['standby_recovery_step', 'standby_recovery_failures_total']);
  });

  test('three alerts: sync lag above 10 s for 5 min, no standby reachable, recovery failed', () => {
    const text = readFileSync(RULES, 'utf8');
    const r = rules(text);
    assert.deepEqual(r.map((x) => x.alert), ['StandbySyncLagHigh', 'StandbyNoStandbyReachable', 'StandbyRecoveryFailed']);
    const lag = r[0]!;
    assert.match(lag.expr, /\bstandby_sync_lag_seconds\b.*> 10$/);
    assert.equal(lag.for, '5m');
    assert.match(r[1]!.expr, /\bstandby_copy_reachable\b == 0$/);
    assert.match(r[2]!.expr, /standby_recovery_step\{step="gave-up"\} == 1|standby_recovery_failures_total/);
  });

  test('every metric an alert reads is one the proxy exports', () => {
    const r = rules(readFileSync(RULES, 'utf8'));
    assert.ok(exported.size > 20, 'the proxy exported its metrics');
    for (const rule of r) {
      const names = metricNames(rule.expr);
      assert.ok(names.length > 0, `${rule.alert} reads a metric`);
      for (const name of names) assert.ok(exported.has(name), `${rule.alert} reads ${name}, which the proxy does not export`);
    }
  });
});

// tokencache k6 load tests, shared code: summary.
// No remote imports: only k6 built-in modules.
import { config, envStr } from './env.js';
import { latency } from './http.js';

export function ms(v) {
  if (v === undefined || v === null || Number.isNaN(v)) return '-';
  return v >= 100 ? v.toFixed(0) : v.toFixed(2);
}

function pad(s, n, right) {
  s = String(s);
  if (s.length >= n) return s;
  return right ? s + ' '.repeat(n - s.length) : ' '.repeat(n - s.length) + s;
}

function flattenChecks(group, out) {
  for (const c of group.checks || []) out.push(c);
  for (const g of group.groups || []) flattenChecks(g, out);
  return out;
}

/** handleSummary(): a short text summary on stdout and a JSON file. */
export function summary(p) {
  return function handleSummary(data) {
    const m = data.metrics;
    const seconds = data.state.testRunDurationMs / 1000;
    const val = (name, key) => (m[name] && m[name].values ? m[name].values[key] : undefined);

    // Seconds of load: the planned duration, or less when the run was cut short
    // (setup's data says when the load could start).
    const sd = data.setup_data;
    const loadS =
      sd && sd.notBefore ? Math.max(0.001, Math.min(p.durationS, (Date.now() - sd.notBefore) / 1000)) : p.durationS;

    const ops = {};
    for (const op of [...p.opNames, 'renew']) {
      const t = m[`op_${op}`];
      if (!t) continue;
      const v = t.values;
      ops[op] = {
        count: v.count,
        rate_per_s: v.count / loadS, // setup excluded
        avg_ms: v.avg,
        med_ms: v.med,
        p90_ms: v['p(90)'],
        p95_ms: v['p(95)'],
        p99_ms: v['p(99)'],
        max_ms: v.max,
      };
    }

    const thresholds = [];
    for (const [name, metric] of Object.entries(m)) {
      for (const [expr, r] of Object.entries(metric.thresholds || {})) {
        thresholds.push({ metric: name, expr, ok: r.ok });
      }
    }
    const passed = thresholds.every((t) => t.ok);
    const checks = flattenChecks(data.root_group, []);
    const checkPasses = val('checks', 'passes') || 0;
    const checkFails = val('checks', 'fails') || 0;

    const lines = [];
    lines.push('');
    lines.push(`tokencache load test: ${p.name}${config.smoke ? '  (SMOKE: correctness thresholds only)' : ''}`);
    lines.push(
      `  target ${config.baseUrl}  app ${config.appKey}  users ${config.users}  ` +
        `planned ${Object.entries(p.ops).map(([, o]) => `${o.op} ${o.rate}/s`).join(', ')} for ${p.duration}`,
    );
    lines.push(
      `  requests ${val('http_reqs', 'count') || 0} (${(val('http_reqs', 'rate') || 0).toFixed(1)}/s incl. setup)  ` +
        `failed ${((val('http_req_failed', 'rate') || 0) * 100).toFixed(2)}%  ` +
        `dropped iterations ${val('dropped_iterations', 'count') || 0}  ran ${seconds.toFixed(1)} s`,
    );
    lines.push('');
    lines.push(
      `  ${pad('operation', 14, true)}${pad('count', 9)}${pad('rate/s', 9)}${pad('avg', 9)}${pad('med', 9)}` +
        `${pad('p90', 9)}${pad('p95', 9)}${pad('p99', 9)}${pad('max', 9)}   (ms)`,
    );
    for (const [op, o] of Object.entries(ops)) {
      lines.push(
        `  ${pad(op, 14, true)}${pad(o.count, 9)}${pad(o.rate_per_s.toFixed(1), 9)}${pad(ms(o.avg_ms), 9)}` +
          `${pad(ms(o.med_ms), 9)}${pad(ms(o.p90_ms), 9)}${pad(ms(o.p95_ms), 9)}${pad(ms(o.p99_ms), 9)}${pad(ms(o.max_ms), 9)}`,
      );
    }
    if (Object.keys(ops).length === 0) lines.push('  no load ran (setup aborted? see the error above)');
    lines.push('');
    lines.push('  thresholds:');
    for (const t of thresholds) {
      const metric = m[t.metric];
      const key = (t.expr.match(/^\s*([a-z]+(\(\d+(\.\d+)?\))?)/) || [])[1];
      const x = key ? metric.values[key] : undefined;
      const shown = typeof x === 'number' ? ` (${key}=${Number.isInteger(x) ? x : x.toFixed(4)})` : '';
      lines.push(`    ${t.ok ? 'ok  ' : 'FAIL'} ${t.metric} ${t.expr}${shown}`);
    }
    if (config.smoke) lines.push('    (latency and dropped-iteration thresholds off: SMOKE=1)');
    const failing = checks.filter((c) => c.fails > 0);
    if (failing.length > 0) {
      lines.push('  failing checks:');
      for (const c of failing) lines.push(`    ${c.name}: ${c.fails} failed, ${c.passes} passed`);
    }
    lines.push('');
    lines.push(`  result: ${passed ? 'PASS' : 'FAIL'}`);
    lines.push(`checks: ${checkPasses} passed, ${checkFails} failed`);
    lines.push('');

    const report = {
      scenario: p.name,
      passed,
      smoke: config.smoke,
      config: {
        base_url: config.baseUrl,
        app_key: config.appKey,
        users: config.users,
        duration: p.duration,
        rates_per_s: Object.fromEntries(Object.values(p.ops).map((o) => [o.op, o.rate])),
        p99_targets_ms: config.smoke ? null : config.p99,
      },
      ops,
      checks: { passes: checkPasses, fails: checkFails, detail: checks.map((c) => ({ name: c.name, passes: c.passes, fails: c.fails })) },
      thresholds,
      k6: Object.assign({}, data, { setup_data: undefined }),
    };
    const path = envStr('SUMMARY_JSON', `loadtest/results/${p.name}-summary.json`);
    return {
      stdout: lines.join('\n'),
      [path]: JSON.stringify(report, null, 2),
    };
  };
}

// tokencache k6 load tests, shared code: plan: scenarios and options.
// No remote imports: only k6 built-in modules.
import { config, envInt, envStr, parseDuration } from './env.js';

// Latency budget per operation (ms), used only to size the VU pools.
const BUDGET_MS = { check_token: 25, refresh_token: 40, authorize: 400 };

/** `rate` per second as k6 wants it: an integer per some time unit. */
function rateSpec(rate) {
  const whole = (x) => Math.abs(x - Math.round(x)) < 1e-6;
  if (whole(rate)) return { rate: Math.round(rate), timeUnit: '1s' };
  if (whole(rate * 60)) return { rate: Math.round(rate * 60), timeUnit: '1m' };
  return { rate: Math.max(1, Math.round(rate * 3600)), timeUnit: '1h' };
}

/**
 * Builds the options of a test: `ops` maps an exported function name to
 * { op, rate } (rate in requests per second). Every entry becomes one
 * constant-arrival-rate scenario running for `duration`.
 */
export function plan(name, duration, ops) {
  const durationS = parseDuration(duration);
  const scenarios = {};
  let totalMaxVUs = 0;
  let plannedIterations = 0;
  for (const [fn, spec] of Object.entries(ops)) {
    const budget = BUDGET_MS[spec.op] / 1000;
    const pre = envInt('PRE_VUS', Math.max(2, Math.ceil(spec.rate * budget) + 1));
    const max = Math.max(pre, envInt('MAX_VUS', Math.max(10, pre * 4)));
    scenarios[fn] = Object.assign(
      {
        executor: 'constant-arrival-rate',
        exec: fn,
        duration,
        preAllocatedVUs: pre,
        maxVUs: max,
        gracefulStop: '10s',
        tags: { workload: name },
      },
      rateSpec(spec.rate),
    );
    totalMaxVUs += max;
    plannedIterations += spec.rate * durationS;
  }
  const opNames = [...new Set(Object.values(ops).map((o) => o.op))];
  const thresholds = {
    // Correctness: always on (SMOKE=1 keeps only these).
    checks: ['rate>0.99'],
    http_req_failed: ['rate<0.01'],
  };
  if (!config.smoke) {
    for (const op of opNames) {
      thresholds[`http_req_duration{op:${op}}`] = [`p(99)<${config.p99[op]}`];
    }
    const allowed = Math.max(1, Math.floor(plannedIterations * config.maxDropped));
    thresholds.dropped_iterations = [`count<=${allowed}`];
  }
  const options = {
    scenarios,
    thresholds,
    setupTimeout: envStr('SETUP_TIMEOUT', '5m'),
    summaryTrendStats: ['avg', 'min', 'med', 'p(90)', 'p(95)', 'p(99)', 'max', 'count'],
    // Keep-alive connections, as a gateway in front of tokencache would use.
    noConnectionReuse: false,
    userAgent: 'tokencache-loadtest/1',
  };
  return {
    name,
    duration,
    durationS,
    ops,
    opNames,
    totalMaxVUs,
    plannedIterations,
    // How many VUs may log in as the same user: each gets its own residue of the
    // millisecond `time` so that two signatures never collide (replay check).
    timeSlots: Math.max(1, Math.ceil(totalMaxVUs / config.users)),
    options,
  };
}

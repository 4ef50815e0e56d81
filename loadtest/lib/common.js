// Shared code of the tokencache k6 load tests: configuration from the environment,
// request signing, the four API calls with their correctness checks, per-VU token
// sessions, setup (sanity probes + logins), thresholds and the end-of-test summary.
//
// No remote imports: only k6 built-in modules.
import http from 'k6/http';
import crypto from 'k6/crypto';
import exec from 'k6/execution';
import { check } from 'k6';
import { Trend } from 'k6/metrics';

// ---------------------------------------------------------------------------
// Environment

export function envStr(name, fallback) {
  const v = __ENV[name];
  return v === undefined || v === '' ? fallback : String(v);
}

export function envNum(name, fallback) {
  const raw = envStr(name, undefined);
  if (raw === undefined) return fallback;
  const n = Number(raw);
  if (!Number.isFinite(n) || n <= 0) {
    throw new Error(`${name}=${raw}: expected a positive number`);
  }
  return n;
}

export function envInt(name, fallback) {
  return Math.floor(envNum(name, fallback));
}

export function envFlag(name) {
  return ['1', 'true', 'yes', 'on'].includes(envStr(name, '0').toLowerCase());
}

/** A k6 duration ("90s", "1m30s", "2h", "500ms", or plain seconds) in seconds. */
export function parseDuration(text) {
  const s = String(text).trim();
  if (/^\d+(\.\d+)?$/.test(s)) return Number(s);
  const re = /(\d+(?:\.\d+)?)(ms|s|m|h|d)/g;
  const unit = { ms: 0.001, s: 1, m: 60, h: 3600, d: 86400 };
  let total = 0;
  let consumed = 0;
  let m;
  while ((m = re.exec(s)) !== null) {
    total += Number(m[1]) * unit[m[2]];
    consumed += m[0].length;
  }
  if (consumed !== s.length || consumed === 0) {
    throw new Error(`DURATION=${text}: expected a k6 duration such as 30s, 5m or 1h30m`);
  }
  return total;
}

/** Everything the tests read from the environment (see loadtest/README.md). */
export const config = {
  baseUrl: envStr('BASE_URL', 'http://127.0.0.1:9094').replace(/\/+$/, ''),
  appKey: envStr('APP_KEY', 'bench'),
  appSecret: envStr('APP_SECRET', 'tokencache-bench-secret'),
  users: envInt('USERS', 100),
  userPrefix: envStr('USER_PREFIX', 'bench'),
  userPassword: envStr('USER_PASSWORD', 'bench-password'),
  tokenType: envStr('TOKEN_TYPE', 'bench'),
  smoke: envFlag('SMOKE'),
  skipProbes: envFlag('SKIP_PROBES'),
  // p99 targets of http_req_duration per operation, in milliseconds.
  p99: {
    check_token: envNum('P99_CHECK_TOKEN_MS', 10),
    refresh_token: envNum('P99_REFRESH_TOKEN_MS', 25),
    authorize: envNum('P99_AUTHORIZE_MS', 300),
  },
  // Share of the planned iterations k6 may drop (server too slow to keep the rate).
  maxDropped: envNum('MAX_DROPPED_RATIO', 0.01),
};

export function userName(i) {
  return `${config.userPrefix}${i}`;
}

// ---------------------------------------------------------------------------
// Plan: scenarios and options

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

// ---------------------------------------------------------------------------
// HTTP

const latency = {
  check_token: new Trend('op_check_token', true),
  refresh_token: new Trend('op_refresh_token', true),
  authorize: new Trend('op_authorize', true),
  renew: new Trend('op_renew', true),
};

const JSON_HEADERS = { 'Content-Type': 'application/json' };
const EXPECT_401 = http.expectedStatuses(401);

function params(op, expect401) {
  const p = { headers: JSON_HEADERS, tags: { op } };
  if (expect401) p.responseCallback = EXPECT_401;
  return p;
}

function url(path) {
  return `${config.baseUrl}${path}`;
}

/** POSTs a JSON body, tagged with `op` (check_token, refresh_token, authorize, renew, setup, probe). */
export function post(path, payload, op, expect401) {
  const res = http.post(url(path), JSON.stringify(payload), params(op, expect401));
  if (latency[op]) latency[op].add(res.timings.duration);
  return res;
}

/** The parsed envelope, or null when the body is not JSON. */
export function envelope(res) {
  try {
    const b = res.json();
    return b && typeof b === 'object' ? b : null;
  } catch (_) {
    return null;
  }
}

function nonEmpty(v) {
  return typeof v === 'string' && v.length > 0;
}

function okEnvelope(b) {
  return b !== null && b.state === true && b.code === 0 && b.data !== null && typeof b.data === 'object';
}

function describe(res) {
  const b = envelope(res);
  if (b) return `HTTP ${res.status} code ${b.code} (${b.error})`;
  return `HTTP ${res.status} ${res.error || ''} ${String(res.body || '').slice(0, 120)}`;
}

// ---------------------------------------------------------------------------
// Signing and login times

/** md5(appid + username + password + time + app_secret), lowercase hex. */
export function sign(appid, username, password, time, secret) {
  return crypto.md5(`${appid}${username}${password}${time}${secret}`, 'hex');
}

let lastTime = 0;

/**
 * A millisecond `time` never used before by any VU for this user: strictly
 * increasing in this VU, congruent to `slot` modulo `slots` (VUs sharing a user
 * have different slots), and not before `notBefore` (the end of setup's logins).
 */
export function uniqueTime(slots, slot, notBefore) {
  let t = Math.max(Date.now(), lastTime + 1, notBefore || 0);
  t += (((slot - (t % slots)) % slots) + slots) % slots;
  lastTime = t;
  return t;
}

function authorizeBody(username, password, time) {
  const t = String(time);
  return {
    appid: config.appKey,
    username,
    password,
    time: t,
    token: sign(config.appKey, username, password, t, config.appSecret),
    token_type: config.tokenType,
  };
}

/** The session a successful authorize/refresh answer describes (times in local ms). */
function sessionFrom(username, data) {
  const now = Date.now();
  const ttl = Number(data.expire_time);
  return {
    username,
    access: data.access_token,
    refresh: data.refresh_token,
    ttl,
    accessUntil: now + ttl * 1000,
    // refresh tokens live twice as long as access tokens
    refreshUntil: now + 2 * ttl * 1000,
  };
}

function checkIssued(res, b, label, op, username, withUsername) {
  const d = b && b.data ? b.data : {};
  const checks = {
    [`${label}: HTTP 200`]: (r) => r.status === 200,
    [`${label}: state true, code 0`]: () => okEnvelope(b),
    [`${label}: new access and refresh tokens`]: () =>
      nonEmpty(d.access_token) && nonEmpty(d.refresh_token) && d.access_token !== d.refresh_token,
    [`${label}: expire_time > 0`]: () => Number(d.expire_time) > 0,
  };
  if (withUsername) checks[`${label}: same username`] = () => d.username === username;
  return check(res, checks, { op });
}

/**
 * authorize: logs `username` in with a fresh signature. Returns a session, or
 * null when the answer was not a correct success (the checks say why).
 */
export function authorize(username, op, time, label) {
  const res = post('/api/v1/authorize', authorizeBody(username, config.userPassword, time), op);
  const b = envelope(res);
  if (!checkIssued(res, b, label || 'authorize', op, username, false)) return null;
  return sessionFrom(username, b.data);
}

/** check_token: the token must be live and belong to `username` of this app. */
export function checkToken(token, username, op, label) {
  const res = post('/api/v1/check_token', { token }, op);
  const b = envelope(res);
  const d = b && b.data ? b.data : {};
  const l = label || 'check_token';
  return check(
    res,
    {
      [`${l}: HTTP 200`]: (r) => r.status === 200,
      [`${l}: state true, code 0`]: () => okEnvelope(b),
      [`${l}: username, app_key, token_type`]: () =>
        d.username === username && d.app_key === config.appKey && d.token_type === config.tokenType,
      [`${l}: expire_time > 0`]: () => Number(d.expire_time) > 0,
    },
    { op },
  );
}

/** refresh_token: spends `session.refresh`; returns the next session or null. */
export function refreshToken(session, op, label) {
  const res = post('/api/v1/refresh_token', { refresh_token: session.refresh }, op);
  const b = envelope(res);
  const l = label || 'refresh_token';
  if (!checkIssued(res, b, l, op, session.username, true)) return null;
  const next = sessionFrom(session.username, b.data);
  const fresh = check(
    res,
    { [`${l}: pair differs from the spent one`]: () => next.access !== session.access && next.refresh !== session.refresh },
    { op },
  );
  return fresh ? next : null;
}

// ---------------------------------------------------------------------------
// Per-VU state

/** This VU's bench user and its time slot (see plan().timeSlots). */
export function vuIdentity(p) {
  const i = Math.max(0, exec.vu.idInTest - 1);
  return { username: userName(i % config.users), slot: Math.floor(i / config.users) % p.timeSlots };
}

/** Logs this VU's user in (a VU that lost its token chain, or needs a new one). */
export function vuLogin(p, data, op, label) {
  const me = vuIdentity(p);
  return authorize(me.username, op, uniqueTime(p.timeSlots, me.slot, data.notBefore), label);
}

let mine = null;
let started = false;

/**
 * This VU's own token session: the one setup() made for it, kept alive by
 * refreshing shortly before the access token expires (op "renew"), or by logging
 * in again when the refresh token is gone too. Never shared between VUs, so the
 * single-use refresh tokens never race.
 */
export function vuSession(p, data) {
  if (!started) {
    // First iteration of this VU: the session setup() made for it, if any.
    started = true;
    const i = exec.vu.idInTest - 1;
    if (i >= 0 && i < data.sessions.length) mine = Object.assign({}, data.sessions[i]);
  }
  if (mine === null) {
    mine = vuLogin(p, data, 'renew', 'renew (authorize)');
    return mine;
  }
  const now = Date.now();
  const margin = Math.min(60000, (mine.ttl * 1000) / 10);
  if (now >= mine.accessUntil - margin) {
    let next = null;
    if (now < mine.refreshUntil - margin) next = refreshToken(mine, 'renew', 'renew (refresh_token)');
    if (next === null) next = vuLogin(p, data, 'renew', 'renew (authorize)');
    mine = next;
  }
  return mine;
}

/** Replaces this VU's session (after a refresh), or drops it (null: log in again next time). */
export function setVuSession(s) {
  mine = s;
}

// ---------------------------------------------------------------------------
// Setup

function abort(msg) {
  exec.test.abort(msg);
  throw new Error(msg); // not reached
}

function randomToken() {
  const alphabet = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789';
  let s = '';
  for (let i = 0; i < 32; i++) s += alphabet[Math.floor(Math.random() * alphabet.length)];
  return s;
}

function refused(res, code, name) {
  const b = envelope(res);
  return check(
    res,
    { [`probe: ${name} refused (HTTP 401, code ${code})`]: (r) => r.status === 401 && b !== null && b.state === false && b.code === code },
    { op: 'probe' },
  );
}

/**
 * Sanity probes: the server must refuse what it has to refuse, or a load test that
 * only sees successes proves little. Aborts the test when one fails.
 */
function probes(nextTime) {
  const user = userName(0);
  // 1. an unknown token
  let res = post('/api/v1/check_token', { token: randomToken() }, 'probe', true);
  if (!refused(res, 102, 'unknown token')) abort(`probe: unknown token not refused: ${describe(res)}`);

  // 2. a replayed signature
  const body = authorizeBody(user, config.userPassword, nextTime());
  res = post('/api/v1/authorize', body, 'probe');
  const b = envelope(res);
  if (res.status !== 200 || !okEnvelope(b)) {
    abort(
      `probe: ${user} cannot log in to app ${config.appKey} (${describe(res)}); ` +
        'do the bench client and users exist with this APP_SECRET and USER_PASSWORD? (loadtest/run.sh creates them)',
    );
  }
  const first = sessionFrom(user, b.data);
  res = post('/api/v1/authorize', body, 'probe', true);
  if (!refused(res, 1003, 'replayed signature')) abort(`probe: replayed signature not refused: ${describe(res)}`);

  // 3. a wrong password
  res = post('/api/v1/authorize', authorizeBody(user, `${config.userPassword}-wrong`, nextTime()), 'probe', true);
  if (!refused(res, 1004, 'wrong password')) abort(`probe: wrong password not refused: ${describe(res)}`);

  // 4. the refreshed access token works
  const next = refreshToken(first, 'probe', 'probe: refresh_token');
  if (next === null) abort('probe: refresh_token failed');
  if (!checkToken(next.access, user, 'probe', 'probe: check_token')) abort('probe: refreshed access token not accepted');

  // 5. a refresh token spent twice is refused, and (a replay: the login's tokens are
  // treated as stolen) the pair it was rotated into dies with it
  res = post('/api/v1/refresh_token', { refresh_token: first.refresh }, 'probe', true);
  if (!refused(res, 102, 'spent refresh token')) abort(`probe: a spent refresh token was accepted again: ${describe(res)}`);
  res = post('/api/v1/check_token', { token: next.access }, 'probe', true);
  if (!refused(res, 102, 'token of a replayed login')) abort(`probe: a replayed refresh token did not revoke its login: ${describe(res)}`);
}

/**
 * Logs in `count` sessions (at least one per bench user, so that every user is
 * known to exist and any password re-hash happens here, not under load):
 * session i belongs to user i % USERS. Aborts on the first failure.
 */
function loginMany(count, nextTime) {
  const n = Math.max(count, config.users);
  const sessions = [];
  const chunk = 24;
  for (let start = 0; start < n; start += chunk) {
    const reqs = [];
    const names = [];
    for (let i = start; i < Math.min(n, start + chunk); i++) {
      const username = userName(i % config.users);
      names.push(username);
      reqs.push({
        method: 'POST',
        url: url('/api/v1/authorize'),
        body: JSON.stringify(authorizeBody(username, config.userPassword, nextTime())),
        params: params('setup'),
      });
    }
    const responses = http.batch(reqs);
    responses.forEach((res, k) => {
      const b = envelope(res);
      if (!checkIssued(res, b, 'setup authorize', 'setup', names[k], false)) {
        abort(
          `setup: ${names[k]} cannot log in (${describe(res)}); USERS=${config.users} bench users ` +
            `${userName(0)}..${userName(config.users - 1)} must exist with USER_PASSWORD (loadtest/run.sh creates them)`,
        );
      }
      sessions.push(sessionFrom(names[k], b.data));
    });
  }
  return sessions;
}

/**
 * setup(): sanity probes, then `sessions` logins. Returns the data every VU gets:
 * { sessions, notBefore, ttl }.
 */
export function setupData(p, sessions) {
  if (!config.appSecret) abort('APP_SECRET is empty');
  let t = Date.now();
  const nextTime = () => {
    t = Math.max(t + 1, Date.now());
    return t;
  };
  if (!config.skipProbes) probes(nextTime);
  const list = loginMany(sessions, nextTime);
  const ttl = list[0].ttl;
  return { sessions: list, notBefore: t + 1, ttl };
}

/** Aborts when tokens made in setup would expire before the end of the test. */
export function requireTtlCovers(p, data, hint) {
  if (p.durationS + 60 >= data.ttl) {
    abort(
      `DURATION=${p.duration} is not shorter than the client's token lifetime (${data.ttl} s) plus a minute: ` +
        `the tokens made in setup would expire mid-test. ${hint}`,
    );
  }
}

// ---------------------------------------------------------------------------
// Summary

function ms(v) {
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

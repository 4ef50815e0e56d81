// tokencache k6 load tests, shared code: environment.
// No remote imports: only k6 built-in modules.

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

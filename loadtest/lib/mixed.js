// The mixed workload of mixed.js and soak.js: three constant-arrival-rate
// scenarios at 95 % check_token, 4 % refresh_token and 1 % authorize of RATE.
import { envNum, envStr, plan, setupData, vuSession, setVuSession, vuLogin, checkToken, refreshToken, summary } from './common.js';

/** RATE × share, rounded to a whole number of requests per hour. */
function share(rate, part) {
  return Math.round(rate * part * 3600) / 3600;
}

export function mixedWorkload(name, defaults) {
  const rate = envNum('RATE', defaults.rate);
  const duration = envStr('DURATION', defaults.duration);
  const p = plan(name, duration, {
    checkTokens: { op: 'check_token', rate: share(rate, 0.95) },
    refreshes: { op: 'refresh_token', rate: share(rate, 0.04) },
    logins: { op: 'authorize', rate: share(rate, 0.01) },
  });
  return {
    options: p.options,
    // One session per possible VU, each kept alive by its VU (op "renew"), so the
    // test runs longer than the token lifetime.
    setup: () => setupData(p, p.totalMaxVUs),
    checkTokens(data) {
      const s = vuSession(p, data);
      if (s !== null) checkToken(s.access, s.username, 'check_token');
    },
    refreshes(data) {
      const s = vuSession(p, data);
      if (s !== null) setVuSession(refreshToken(s, 'refresh_token'));
    },
    logins(data) {
      vuLogin(p, data, 'authorize', 'authorize');
    },
    handleSummary: summary(p),
  };
}

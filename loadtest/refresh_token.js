// refresh_token.js: token rotation. A constant arrival rate of refresh_token calls
// (RATE/s for DURATION). Refresh tokens are single-use, so every VU keeps its own
// chain (started from a login made in setup()) and always spends the newest
// refresh token it holds; a broken chain is restarted with a login (op "renew").
//
//   BASE_URL=http://127.0.0.1:9094 APP_SECRET=... k6 run loadtest/refresh_token.js
//   (or: loadtest/run.sh refresh_token)
import { envNum, envStr, plan, setupData, vuSession, setVuSession, refreshToken, summary } from './lib/common.js';

const RATE = envNum('RATE', 500);
const DURATION = envStr('DURATION', '1m');

const p = plan('refresh_token', DURATION, { refreshes: { op: 'refresh_token', rate: RATE } });

export const options = p.options;

export function setup() {
  // One session per possible VU: no two VUs ever hold the same refresh token.
  return setupData(p, p.totalMaxVUs);
}

export function refreshes(data) {
  const s = vuSession(p, data);
  if (s === null) return; // the login failed; its checks say why
  setVuSession(refreshToken(s, 'refresh_token'));
}

export const handleSummary = summary(p);

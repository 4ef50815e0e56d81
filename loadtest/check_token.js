// check_token.js: the hot path a gateway calls on every request. A constant
// arrival rate of check_token calls (RATE/s for DURATION) against a pool of live
// access tokens made in setup(); each answer must be HTTP 200, state true and name
// the token's user, app and token type.
//
//   BASE_URL=http://127.0.0.1:9094 APP_SECRET=... k6 run loadtest/check_token.js
//   (or: loadtest/run.sh check_token)
import { config, envInt, envNum, envStr, plan, setupData, requireTtlCovers, checkToken, summary } from './lib/common.js';

const RATE = envNum('RATE', 1000);
const DURATION = envStr('DURATION', '1m');
// Live access tokens to spread the checks over (at least one per bench user).
const TOKENS = envInt('TOKENS', config.users);

const p = plan('check_token', DURATION, { checkTokens: { op: 'check_token', rate: RATE } });

export const options = p.options;

export function setup() {
  const data = setupData(p, TOKENS);
  requireTtlCovers(p, data, 'Use soak.js for long runs (it renews its tokens) or a client with a longer --token-ttl.');
  return data;
}

export function checkTokens(data) {
  const s = data.sessions[Math.floor(Math.random() * data.sessions.length)];
  checkToken(s.access, s.username, 'check_token');
}

export const handleSummary = summary(p);

// authorize.js: logins. A constant arrival rate of signed authorize calls (RATE/s
// for DURATION); each VU logs in its own bench user with a millisecond `time` no
// other request used, so the replay check never fires by accident. The cost is
// dominated by argon2id password verification (TOKENCACHE_ARGON2_* settings).
//
//   BASE_URL=http://127.0.0.1:9094 APP_SECRET=... k6 run loadtest/authorize.js
//   (or: loadtest/run.sh authorize)
import { envNum, envStr, plan, setupData, vuLogin, summary } from './lib/common.js';

const RATE = envNum('RATE', 20);
const DURATION = envStr('DURATION', '1m');

const p = plan('authorize', DURATION, { logins: { op: 'authorize', rate: RATE } });

export const options = p.options;

export function setup() {
  // Probes, and one login per bench user (checks they exist; re-hashes happen here).
  const data = setupData(p, 0);
  data.sessions = []; // not needed by the VUs
  return data;
}

export function logins(data) {
  vuLogin(p, data, 'authorize', 'authorize');
}

export const handleSummary = summary(p);

// mixed.js: a gateway's traffic mix at RATE requests/s for DURATION:
// 95 % check_token, 4 % refresh_token, 1 % authorize (three constant-arrival-rate
// scenarios), each answer checked for correctness.
//
//   BASE_URL=http://127.0.0.1:9094 APP_SECRET=... k6 run loadtest/mixed.js
//   (or: loadtest/run.sh mixed)
import { mixedWorkload } from './lib/mixed.js';

const w = mixedWorkload('mixed', { rate: 1000, duration: '2m' });

export const options = w.options;
export const setup = w.setup;
export const checkTokens = w.checkTokens;
export const refreshes = w.refreshes;
export const logins = w.logins;
export const handleSummary = w.handleSummary;

// soak.js: the mixed workload (95 % check_token, 4 % refresh_token, 1 % authorize)
// at a moderate RATE for a long DURATION (default 200/s for 30 minutes), to show
// slow degradation: latency creeping up, errors, memory growth (loadtest/run.sh
// samples the server's RSS). Every VU renews its own tokens before they expire, so
// DURATION may exceed the token lifetime.
//
//   BASE_URL=http://127.0.0.1:9094 APP_SECRET=... k6 run loadtest/soak.js
//   (or: loadtest/run.sh soak)
import { mixedWorkload } from './lib/mixed.js';

const w = mixedWorkload('soak', { rate: 200, duration: '30m' });

export const options = w.options;
export const setup = w.setup;
export const checkTokens = w.checkTokens;
export const refreshes = w.refreshes;
export const logins = w.logins;
export const handleSummary = w.handleSummary;

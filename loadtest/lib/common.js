// Shared code of the tokencache k6 load tests: configuration from the environment,
// request signing, the four API calls with their correctness checks, per-VU token
// sessions, setup (sanity probes + logins), thresholds and the end-of-test summary.
//
// No remote imports: only k6 built-in modules.
//
// The parts live in one file each; this one gathers what the scenarios import.
export { envStr, envNum, envInt, envFlag, parseDuration, config, userName } from './env.js';
export { plan } from './plan.js';
export { post, envelope } from './http.js';
export { sign, uniqueTime, authorize, checkToken, refreshToken } from './calls.js';
export { vuIdentity, vuLogin, vuSession, setVuSession } from './session.js';
export { setupData, requireTtlCovers } from './setup.js';
export { summary } from './summary.js';

// tokencache k6 load tests, shared code: http.
// No remote imports: only k6 built-in modules.
import http from 'k6/http';
import { Trend } from 'k6/metrics';
import { config } from './env.js';

export const latency = {
  check_token: new Trend('op_check_token', true),
  refresh_token: new Trend('op_refresh_token', true),
  authorize: new Trend('op_authorize', true),
  renew: new Trend('op_renew', true),
};

const JSON_HEADERS = { 'Content-Type': 'application/json' };
const EXPECT_401 = http.expectedStatuses(401);

export function params(op, expect401) {
  const p = { headers: JSON_HEADERS, tags: { op } };
  if (expect401) p.responseCallback = EXPECT_401;
  return p;
}

export function url(path) {
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

export function nonEmpty(v) {
  return typeof v === 'string' && v.length > 0;
}

export function okEnvelope(b) {
  return b !== null && b.state === true && b.code === 0 && b.data !== null && typeof b.data === 'object';
}

export function describe(res) {
  const b = envelope(res);
  if (b) return `HTTP ${res.status} code ${b.code} (${b.error})`;
  return `HTTP ${res.status} ${res.error || ''} ${String(res.body || '').slice(0, 120)}`;
}

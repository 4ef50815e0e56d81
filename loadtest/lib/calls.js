// tokencache k6 load tests, shared code: signing and login times.
// No remote imports: only k6 built-in modules.
import crypto from 'k6/crypto';
import { check } from 'k6';
import { config } from './env.js';
import { envelope, nonEmpty, okEnvelope, post } from './http.js';

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

export function authorizeBody(username, password, time) {
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
export function sessionFrom(username, data) {
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

export function checkIssued(res, b, label, op, username, withUsername) {
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

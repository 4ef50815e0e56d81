// tokencache k6 load tests, shared code: per-vu state.
// No remote imports: only k6 built-in modules.
import exec from 'k6/execution';
import { authorize, refreshToken, uniqueTime } from './calls.js';
import { config, userName } from './env.js';

/** This VU's bench user and its time slot (see plan().timeSlots). */
export function vuIdentity(p) {
  const i = Math.max(0, exec.vu.idInTest - 1);
  return { username: userName(i % config.users), slot: Math.floor(i / config.users) % p.timeSlots };
}

/** Logs this VU's user in (a VU that lost its token chain, or needs a new one). */
export function vuLogin(p, data, op, label) {
  const me = vuIdentity(p);
  return authorize(me.username, op, uniqueTime(p.timeSlots, me.slot, data.notBefore), label);
}

let mine = null;
let started = false;

/**
 * This VU's own token session: the one setup() made for it, kept alive by
 * refreshing shortly before the access token expires (op "renew"), or by logging
 * in again when the refresh token is gone too. Never shared between VUs, so the
 * single-use refresh tokens never race.
 */
export function vuSession(p, data) {
  if (!started) {
    // First iteration of this VU: the session setup() made for it, if any.
    started = true;
    const i = exec.vu.idInTest - 1;
    if (i >= 0 && i < data.sessions.length) mine = Object.assign({}, data.sessions[i]);
  }
  if (mine === null) {
    mine = vuLogin(p, data, 'renew', 'renew (authorize)');
    return mine;
  }
  const now = Date.now();
  const margin = Math.min(60000, (mine.ttl * 1000) / 10);
  if (now >= mine.accessUntil - margin) {
    let next = null;
    if (now < mine.refreshUntil - margin) next = refreshToken(mine, 'renew', 'renew (refresh_token)');
    if (next === null) next = vuLogin(p, data, 'renew', 'renew (authorize)');
    mine = next;
  }
  return mine;
}

/** Replaces this VU's session (after a refresh), or drops it (null: log in again next time). */
export function setVuSession(s) {
  mine = s;
}

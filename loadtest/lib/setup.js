// tokencache k6 load tests, shared code: setup.
// No remote imports: only k6 built-in modules.
import http from 'k6/http';
import exec from 'k6/execution';
import { check } from 'k6';
import { authorize, authorizeBody, checkIssued, checkToken, refreshToken, sessionFrom } from './calls.js';
import { config, userName } from './env.js';
import { describe, envelope, okEnvelope, params, post, url } from './http.js';

function abort(msg) {
  exec.test.abort(msg);
  throw new Error(msg); // not reached
}

function randomToken() {
  const alphabet = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789';
  let s = '';
  for (let i = 0; i < 32; i++) s += alphabet[Math.floor(Math.random() * alphabet.length)];
  return s;
}

function refused(res, code, name) {
  const b = envelope(res);
  return check(
    res,
    { [`probe: ${name} refused (HTTP 401, code ${code})`]: (r) => r.status === 401 && b !== null && b.state === false && b.code === code },
    { op: 'probe' },
  );
}

/**
 * Sanity probes: the server must refuse what it has to refuse, or a load test that
 * only sees successes proves little. Aborts the test when one fails.
 */
function probes(nextTime) {
  const user = userName(0);
  // 1. an unknown token
  let res = post('/api/v1/check_token', { token: randomToken() }, 'probe', true);
  if (!refused(res, 102, 'unknown token')) abort(`probe: unknown token not refused: ${describe(res)}`);

  // 2. a replayed signature
  const body = authorizeBody(user, config.userPassword, nextTime());
  res = post('/api/v1/authorize', body, 'probe');
  const b = envelope(res);
  if (res.status !== 200 || !okEnvelope(b)) {
    abort(
      `probe: ${user} cannot log in to app ${config.appKey} (${describe(res)}); ` +
        'do the bench client and users exist with this APP_SECRET and USER_PASSWORD? (loadtest/run.sh creates them)',
    );
  }
  const first = sessionFrom(user, b.data);
  res = post('/api/v1/authorize', body, 'probe', true);
  if (!refused(res, 1003, 'replayed signature')) abort(`probe: replayed signature not refused: ${describe(res)}`);

  // 3. a wrong password
  res = post('/api/v1/authorize', authorizeBody(user, `${config.userPassword}-wrong`, nextTime()), 'probe', true);
  if (!refused(res, 1004, 'wrong password')) abort(`probe: wrong password not refused: ${describe(res)}`);

  // 4. the refreshed access token works
  const next = refreshToken(first, 'probe', 'probe: refresh_token');
  if (next === null) abort('probe: refresh_token failed');
  if (!checkToken(next.access, user, 'probe', 'probe: check_token')) abort('probe: refreshed access token not accepted');

  // 5. a refresh token spent twice is refused, and (a replay: the login's tokens are
  // treated as stolen) the pair it was rotated into dies with it
  res = post('/api/v1/refresh_token', { refresh_token: first.refresh }, 'probe', true);
  if (!refused(res, 102, 'spent refresh token')) abort(`probe: a spent refresh token was accepted again: ${describe(res)}`);
  res = post('/api/v1/check_token', { token: next.access }, 'probe', true);
  if (!refused(res, 102, 'token of a replayed login')) abort(`probe: a replayed refresh token did not revoke its login: ${describe(res)}`);
}

/**
 * Logs in `count` sessions (at least one per bench user, so that every user is
 * known to exist and any password re-hash happens here, not under load):
 * session i belongs to user i % USERS. Aborts on the first failure.
 */
function loginMany(count, nextTime) {
  const n = Math.max(count, config.users);
  const sessions = [];
  const chunk = 24;
  for (let start = 0; start < n; start += chunk) {
    const reqs = [];
    const names = [];
    for (let i = start; i < Math.min(n, start + chunk); i++) {
      const username = userName(i % config.users);
      names.push(username);
      reqs.push({
        method: 'POST',
        url: url('/api/v1/authorize'),
        body: JSON.stringify(authorizeBody(username, config.userPassword, nextTime())),
        params: params('setup'),
      });
    }
    const responses = http.batch(reqs);
    responses.forEach((res, k) => {
      const b = envelope(res);
      if (!checkIssued(res, b, 'setup authorize', 'setup', names[k], false)) {
        abort(
          `setup: ${names[k]} cannot log in (${describe(res)}); USERS=${config.users} bench users ` +
            `${userName(0)}..${userName(config.users - 1)} must exist with USER_PASSWORD (loadtest/run.sh creates them)`,
        );
      }
      sessions.push(sessionFrom(names[k], b.data));
    });
  }
  return sessions;
}

/**
 * setup(): sanity probes, then `sessions` logins. Returns the data every VU gets:
 * { sessions, notBefore, ttl }.
 */
export function setupData(p, sessions) {
  if (!config.appSecret) abort('APP_SECRET is empty');
  let t = Date.now();
  const nextTime = () => {
    t = Math.max(t + 1, Date.now());
    return t;
  };
  if (!config.skipProbes) probes(nextTime);
  const list = loginMany(sessions, nextTime);
  const ttl = list[0].ttl;
  return { sessions: list, notBefore: t + 1, ttl };
}

/** Aborts when tokens made in setup would expire before the end of the test. */
export function requireTtlCovers(p, data, hint) {
  if (p.durationS + 60 >= data.ttl) {
    abort(
      `DURATION=${p.duration} is not shorter than the client's token lifetime (${data.ttl} s) plus a minute: ` +
        `the tokens made in setup would expire mid-test. ${hint}`,
    );
  }
}

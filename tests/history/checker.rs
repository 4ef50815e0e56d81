//! The checker: reads a whole history of concurrent operations (each with its start, end
//! and answer) and proves, over all of it, what a token server promises (in the manner of
//! Jepsen: no single scenario, every interleaving the run produced):
//!
//! 1. **No token outlives a revocation that answered.** A check (or a refresh) that
//!    *started* after a revocation covering the token had *answered* success must not
//!    find it valid. A revocation covers: a logout, its pair; a logout-all or a password
//!    change, every pair of the user whose issue had answered before the revocation
//!    started; a replayed refresh token, every pair of its login issued before the replay
//!    started. And a pair refreshed from a pair a logout-all, a password change or a replay
//!    covers is covered too, whenever the refresh ran (had it run before the revocation,
//!    the revocation must have found its pair; after, its refresh token was dead). A
//!    refresh that started after a revocation covering its token answered must fail.
//! 2. **No refresh token is spent twice.**
//! 3. **A client's own tokens (client_credentials) are never revoked by anything but an
//!    expiry**: no user's cap or logout touches them.
//! 4. **At quiescence, each user's live pairs are what the cap and the revocations
//!    allow**: never more than the cap; none a revocation covers; every pair that no
//!    revocation covers and that fewer than `cap` other pairs could follow is live; and at
//!    least `min(cap, n)` are live, where `n` counts the pairs whose login or refresh
//!    started after the user's last revocation had answered.
use std::collections::{HashMap, HashSet};
use std::time::Duration;

/// A pair: its index in `History::pairs`.
pub type PairId = usize;

/// A token pair a login or a refresh answered with.
#[derive(Debug, Clone)]
pub struct Pair {
    pub user: usize,
    /// The pair it was refreshed from (`None`: a login).
    pub parent: Option<PairId>,
    /// The login it descends from (itself for a login).
    pub family: PairId,
    /// When the operation that issued it started and answered.
    pub issued: (Duration, Duration),
}

/// What an operation did, with what it answered.
#[derive(Debug, Clone)]
pub enum Op {
    /// A login that answered with `pair` (failed logins are not recorded).
    Login { pair: PairId },
    /// A refresh of `from`'s refresh token: `Ok(new pair)`, or refused (102).
    Refresh {
        from: PairId,
        answer: Result<PairId, ()>,
    },
    /// A check of `pair`'s access token: valid or not.
    Check { pair: PairId, valid: bool },
    /// A logout of one pair (by its access or refresh token) that answered success.
    Logout { pair: PairId },
    /// A logout-all or password change of a user that answered success.
    RevokeUser { user: usize },
    /// A check of a client_credentials token: valid or not.
    ClientCheck { token: usize, valid: bool },
    /// A revocation that answered neither success nor refusal (503 under a fault): it
    /// may or may not have run. `pair` for a logout, `user` for a logout-all or a
    /// password change.
    MaybeRevoked {
        pair: Option<PairId>,
        user: Option<usize>,
    },
    /// A refresh of `from`'s token that answered 503: it may have spent the token.
    MaybeRefreshed { from: PairId },
}

/// One operation: what it was and when it ran.
#[derive(Debug, Clone)]
pub struct Event {
    pub start: Duration,
    pub end: Duration,
    pub op: Op,
}

/// A whole run.
#[derive(Debug, Default)]
pub struct History {
    pub pairs: Vec<Pair>,
    pub events: Vec<Event>,
    /// The session cap (0: none).
    pub cap: usize,
    /// The final check of every pair, after every worker stopped: live or not.
    pub quiescent: Vec<(PairId, bool)>,
    /// A fault ran and issue does not wait for replicas: an answered login or refresh may
    /// be lost (counted, not a violation).
    pub lost_allowed: bool,
}

/// A revocation that answered: which pairs it covers and when it ran.
#[derive(Debug)]
struct Revocation {
    start: Duration,
    end: Duration,
    what: String,
}

/// The checker's findings.
#[derive(Debug, Default)]
pub struct Report {
    pub violations: Vec<String>,
    pub ops: usize,
    pub logins: usize,
    pub checks_valid: usize,
    pub checks_refused: usize,
    pub refreshes_ok: usize,
    pub refreshes_refused: usize,
    pub revocations: usize,
    pub replays: usize,
    pub live_at_end: usize,
    /// Pairs a login or refresh answered that are dead at the end with nothing covering
    /// them: lost to a fault (their writes were not replicated when a master died).
    pub lost: usize,
}

impl History {
    /// Every pair descended from `root` through refreshes, `root` included.
    fn descendants(&self, root: PairId, children: &HashMap<PairId, Vec<PairId>>) -> Vec<PairId> {
        let mut out = vec![root];
        let mut i = 0;
        while i < out.len() {
            if let Some(kids) = children.get(&out[i]) {
                out.extend(kids);
            }
            i += 1;
        }
        out
    }

    /// Records that a revocation running over `when` covers `roots` and every pair
    /// refreshed from them.
    fn cover(
        &self,
        covering: &mut HashMap<PairId, Vec<Revocation>>,
        children: &HashMap<PairId, Vec<PairId>>,
        roots: Vec<PairId>,
        when: (Duration, Duration),
        what: String,
    ) {
        let mut seen = HashSet::new();
        for root in roots {
            for p in self.descendants(root, children) {
                if seen.insert(p) {
                    covering.entry(p).or_default().push(Revocation {
                        start: when.0,
                        end: when.1,
                        what: what.clone(),
                    });
                }
            }
        }
    }

    pub fn check(&self) -> Report {
        let mut report = Report {
            ops: self.events.len(),
            ..Report::default()
        };
        let mut children: HashMap<PairId, Vec<PairId>> = HashMap::new();
        for (id, pair) in self.pairs.iter().enumerate() {
            if let Some(parent) = pair.parent {
                children.entry(parent).or_default().push(id);
            }
        }

        // The revocations that answered, and the pairs each covers (rule 1).
        let mut covering: HashMap<PairId, Vec<Revocation>> = HashMap::new();
        // A refresh token's successful spends, for replays and rule 2.
        let mut spent: HashMap<PairId, Vec<&Event>> = HashMap::new();
        for e in &self.events {
            if let Op::Refresh {
                from,
                answer: Ok(_),
            } = &e.op
            {
                spent.entry(*from).or_default().push(e);
            }
        }
        for e in &self.events {
            match &e.op {
                Op::Logout { pair } => {
                    // One pair only: a pair refreshed from it before the logout lives on
                    // (a refresh after it must fail, which the spend rule checks).
                    report.revocations += 1;
                    covering.entry(*pair).or_default().push(Revocation {
                        start: e.start,
                        end: e.end,
                        what: format!("logout of pair {pair}"),
                    });
                }
                Op::RevokeUser { user } => {
                    report.revocations += 1;
                    let roots = self
                        .pairs
                        .iter()
                        .enumerate()
                        .filter(|(_, p)| p.user == *user && p.issued.1 < e.start)
                        .map(|(id, _)| id)
                        .collect();
                    self.cover(
                        &mut covering,
                        &children,
                        roots,
                        (e.start, e.end),
                        format!("revocation of user {user}"),
                    );
                }
                _ => {}
            }
        }
        // Replays: a refusal of a refresh token that a refresh had spent before this one
        // started. It revokes the login's pairs only when it found the token: not when a
        // revocation that started before it answered, or the cap, may have removed it
        // first (such a refusal proves nothing, and is left out).
        let mut replays = Vec::new();
        // Pairs a refusal may or may not have revoked (a replay that found the token, or
        // a token already gone): never required to be live at the end.
        let mut maybe_revoked: HashSet<PairId> = HashSet::new();
        for e in &self.events {
            let Op::Refresh {
                from,
                answer: Err(()),
            } = &e.op
            else {
                continue;
            };
            let replayed = spent
                .get(from)
                .is_some_and(|s| s.iter().any(|g| g.end < e.start));
            let removed = covering
                .get(from)
                .is_some_and(|rs| rs.iter().any(|r| r.start < e.end));
            let pushed_out = self.cap > 0 && {
                let p = &self.pairs[*from];
                let followers = self
                    .pairs
                    .iter()
                    .filter(|q| q.user == p.user && q.issued.1 > p.issued.0 && q.issued.0 < e.end)
                    .count();
                followers > self.cap
            };
            // Under a fault that may lose an answered refresh, its spend may be gone too: a
            // later refusal then proves no replay.
            if replayed && !removed && !pushed_out && !self.lost_allowed {
                replays.push(e);
            } else {
                let family = self.pairs[*from].family;
                for (id, p) in self.pairs.iter().enumerate() {
                    if p.family == family && p.issued.0 < e.end {
                        maybe_revoked.extend(self.descendants(id, &children));
                    }
                }
            }
        }
        // A pair issued while a revocation of its user ran may have come before it: it
        // may be dead as well as live; so may any pair a revocation of unknown outcome
        // covers, and the pairs of a token a refresh of unknown outcome may have spent.
        for e in &self.events {
            match &e.op {
                Op::MaybeRevoked { pair: Some(p), .. } => {
                    maybe_revoked.insert(*p);
                }
                Op::MaybeRevoked { user: Some(u), .. } => {
                    for (id, p) in self.pairs.iter().enumerate() {
                        if p.user == *u && p.issued.0 < e.end {
                            maybe_revoked.extend(self.descendants(id, &children));
                        }
                    }
                }
                Op::MaybeRefreshed { from } => {
                    let family = self.pairs[*from].family;
                    for (id, p) in self.pairs.iter().enumerate() {
                        if p.family == family {
                            maybe_revoked.extend(self.descendants(id, &children));
                        }
                    }
                }
                _ => {}
            }
        }
        for e in &self.events {
            if let Op::RevokeUser { user } = &e.op {
                for (id, p) in self.pairs.iter().enumerate() {
                    if p.user == *user && p.issued.0 < e.end {
                        maybe_revoked.extend(self.descendants(id, &children));
                    }
                }
            }
        }
        for e in replays {
            let Op::Refresh { from, .. } = &e.op else {
                continue;
            };
            let family = self.pairs[*from].family;
            for (id, p) in self.pairs.iter().enumerate() {
                if p.family == family && p.issued.0 < e.end {
                    maybe_revoked.extend(self.descendants(id, &children));
                }
            }
            report.replays += 1;
            let roots = self
                .pairs
                .iter()
                .enumerate()
                .filter(|(_, p)| p.family == family && p.issued.1 < e.start)
                .map(|(id, _)| id)
                .collect();
            self.cover(
                &mut covering,
                &children,
                roots,
                (e.start, e.end),
                format!("replay of pair {from}'s refresh token"),
            );
        }

        let revoked_before = |pair: PairId, at: Duration| {
            covering
                .get(&pair)
                .and_then(|rs| rs.iter().find(|r| r.end < at))
        };
        for e in &self.events {
            match &e.op {
                Op::Check { pair, valid } => {
                    if *valid {
                        report.checks_valid += 1;
                        if let Some(r) = revoked_before(*pair, e.start) {
                            report.violations.push(format!(
                                "pair {pair} checked valid at {:?}, after the {} answered at {:?}",
                                e.start, r.what, r.end
                            ));
                        }
                    } else {
                        report.checks_refused += 1;
                    }
                }
                Op::Login { pair } => {
                    report.logins += 1;
                    debug_assert_eq!(self.pairs[*pair].parent, None);
                }
                Op::Refresh { from, answer } => match answer {
                    Ok(_) => {
                        report.refreshes_ok += 1;
                        if let Some(r) = revoked_before(*from, e.start) {
                            report.violations.push(format!(
                                "pair {from}'s refresh token spent at {:?}, after the {} answered at {:?}",
                                e.start, r.what, r.end
                            ));
                        }
                    }
                    Err(()) => report.refreshes_refused += 1,
                },
                Op::ClientCheck { valid: false, .. } if self.lost_allowed => report.lost += 1,
                Op::ClientCheck {
                    token,
                    valid: false,
                } => report.violations.push(format!(
                    "client_credentials token {token} refused at {:?}: nothing revokes it",
                    e.start
                )),
                _ => {}
            }
        }

        // Rule 2.
        for (pair, spends) in &spent {
            if spends.len() > 1 && self.lost_allowed {
                // The first spend was lost with its master: the token was live again.
                report.lost += spends.len() - 1;
            } else if spends.len() > 1 {
                report.violations.push(format!(
                    "pair {pair}'s refresh token spent {} times",
                    spends.len()
                ));
            }
        }

        // Rule 4.
        let live: HashSet<PairId> = self
            .quiescent
            .iter()
            .filter(|(_, live)| *live)
            .map(|(p, _)| *p)
            .collect();
        let looked_at: HashSet<PairId> = self.quiescent.iter().map(|(p, _)| *p).collect();
        report.live_at_end = live.len();
        let users: HashSet<usize> = self.pairs.iter().map(|p| p.user).collect();
        for user in users {
            let mine: Vec<PairId> = (0..self.pairs.len())
                .filter(|&p| self.pairs[p].user == user)
                .collect();
            let live_mine = mine.iter().filter(|p| live.contains(p)).count();
            if self.cap > 0 && live_mine > self.cap {
                report.violations.push(format!(
                    "user {user}: {live_mine} live pairs at the end, over the cap {}",
                    self.cap
                ));
            }
            for &p in mine.iter().filter(|p| looked_at.contains(p)) {
                let covered = covering.contains_key(&p);
                if covered && live.contains(&p) {
                    let r = &covering[&p][0];
                    report.violations.push(format!(
                        "pair {p} live at the end, after the {} answered",
                        r.what
                    ));
                }
                if covered || live.contains(&p) || maybe_revoked.contains(&p) {
                    continue;
                }
                // Pairs that could come after p in the index: issued by an operation that
                // had not answered when p's started.
                let followers = mine
                    .iter()
                    .filter(|&&q| q != p && self.pairs[q].issued.1 > self.pairs[p].issued.0)
                    .count();
                if self.cap == 0 || followers < self.cap {
                    if self.lost_allowed {
                        report.lost += 1;
                    } else {
                        report.violations.push(format!(
                            "pair {p} of user {user} dead at the end: no revocation covers it \
                             and only {followers} pairs could follow it (cap {})",
                            self.cap
                        ));
                    }
                }
            }
            // (Under a fault that may lose an answered login, the floor cannot be known.)
            if self.cap > 0 && !self.quiescent.is_empty() && !self.lost_allowed {
                let last_revocation = self
                    .events
                    .iter()
                    .filter(|e| match &e.op {
                        Op::RevokeUser { user: u } => *u == user,
                        Op::Logout { pair } => self.pairs[*pair].user == user,
                        Op::Refresh {
                            from,
                            answer: Err(()),
                        } => self.pairs[*from].user == user,
                        _ => false,
                    })
                    .map(|e| e.end)
                    .max();
                let clean = mine
                    .iter()
                    .filter(|&&p| last_revocation.is_none_or(|r| self.pairs[p].issued.0 > r))
                    .count();
                let floor = clean.min(self.cap);
                if live_mine < floor {
                    report.violations.push(format!(
                        "user {user}: {live_mine} live pairs at the end, where {clean} were \
                         issued after the last revocation (cap {}): at least {floor} must live",
                        self.cap
                    ));
                }
            }
        }
        report
    }
}

#[cfg(test)]
mod tests {
    //! The checker checked: each rule finds its violation in a history made by hand.
    use super::*;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    fn login(h: &mut History, user: usize, start: u64, end: u64) -> PairId {
        let id = h.pairs.len();
        h.pairs.push(Pair {
            user,
            parent: None,
            family: id,
            issued: (ms(start), ms(end)),
        });
        h.events.push(Event {
            start: ms(start),
            end: ms(end),
            op: Op::Login { pair: id },
        });
        id
    }

    fn refresh(h: &mut History, from: PairId, start: u64, end: u64) -> PairId {
        let id = h.pairs.len();
        h.pairs.push(Pair {
            user: h.pairs[from].user,
            parent: Some(from),
            family: h.pairs[from].family,
            issued: (ms(start), ms(end)),
        });
        h.events.push(Event {
            start: ms(start),
            end: ms(end),
            op: Op::Refresh {
                from,
                answer: Ok(id),
            },
        });
        id
    }

    fn event(h: &mut History, start: u64, end: u64, op: Op) {
        h.events.push(Event {
            start: ms(start),
            end: ms(end),
            op,
        });
    }

    #[test]
    fn a_refresh_racing_logout_all_must_not_survive_it() {
        let mut h = History::default();
        let a = login(&mut h, 0, 0, 1);
        // The refresh and the logout-all overlap; the new pair is checked after both.
        let b = refresh(&mut h, a, 10, 20);
        event(&mut h, 12, 15, Op::RevokeUser { user: 0 });
        event(
            &mut h,
            30,
            31,
            Op::Check {
                pair: b,
                valid: true,
            },
        );
        let report = h.check();
        assert_eq!(report.violations.len(), 1, "{:?}", report.violations);
        // A login racing it may survive (it may come after).
        let mut h = History::default();
        login(&mut h, 0, 0, 1);
        let c = login(&mut h, 0, 10, 20);
        event(&mut h, 12, 15, Op::RevokeUser { user: 0 });
        event(
            &mut h,
            30,
            31,
            Op::Check {
                pair: c,
                valid: true,
            },
        );
        assert!(h.check().violations.is_empty());
    }

    #[test]
    fn a_check_that_starts_before_the_revocation_answers_may_still_pass() {
        let mut h = History::default();
        let a = login(&mut h, 0, 0, 1);
        event(&mut h, 5, 10, Op::Logout { pair: a });
        event(
            &mut h,
            9,
            12,
            Op::Check {
                pair: a,
                valid: true,
            },
        );
        assert!(h.check().violations.is_empty());
        event(
            &mut h,
            11,
            12,
            Op::Check {
                pair: a,
                valid: true,
            },
        );
        assert_eq!(h.check().violations.len(), 1);
    }

    #[test]
    fn a_replay_revokes_the_family_and_a_token_is_spent_once() {
        let mut h = History::default();
        let a = login(&mut h, 0, 0, 1);
        let b = refresh(&mut h, a, 2, 3);
        event(
            &mut h,
            4,
            5,
            Op::Refresh {
                from: a,
                answer: Err(()),
            },
        );
        event(
            &mut h,
            6,
            7,
            Op::Check {
                pair: b,
                valid: true,
            },
        );
        assert_eq!(h.check().violations.len(), 1);
        let mut h = History::default();
        let a = login(&mut h, 0, 0, 1);
        refresh(&mut h, a, 2, 3);
        refresh(&mut h, a, 2, 4);
        assert_eq!(h.check().violations.len(), 1);
    }

    #[test]
    fn the_cap_keeps_the_newest_and_no_more() {
        // Sixty logins at once, cap 5: at least five must live, none over.
        let mut h = History {
            cap: 5,
            ..History::default()
        };
        let all: Vec<PairId> = (0..60).map(|_| login(&mut h, 0, 0, 10)).collect();
        h.quiescent = all.iter().map(|&p| (p, false)).collect();
        assert!(!h.check().violations.is_empty(), "none live");
        h.quiescent = all.iter().map(|&p| (p, p < 5)).collect();
        assert!(h.check().violations.is_empty());
        h.quiescent = all.iter().map(|&p| (p, p < 6)).collect();
        assert!(!h.check().violations.is_empty(), "six live");
        // Sequential logins: the last five must be the live ones.
        let mut h = History {
            cap: 2,
            ..History::default()
        };
        let seq: Vec<PairId> = (0..4)
            .map(|i| login(&mut h, 0, i * 10, i * 10 + 1))
            .collect();
        h.quiescent = seq.iter().map(|&p| (p, p < 2)).collect();
        assert!(!h.check().violations.is_empty(), "the oldest kept");
        h.quiescent = seq.iter().map(|&p| (p, p >= 2)).collect();
        assert!(h.check().violations.is_empty());
    }

    #[test]
    fn a_client_token_is_never_refused() {
        let mut h = History::default();
        event(
            &mut h,
            0,
            1,
            Op::ClientCheck {
                token: 3,
                valid: false,
            },
        );
        assert_eq!(h.check().violations.len(), 1);
    }
}

//! The commands of one store operation, in stages, and the cluster slot of a key: how an
//! operation's writes go out in every mode, and how an operation waits for replicas.
use std::time::Duration;

use redis::{Cmd, FromRedisValue, RedisError, RedisResult, Value};

use super::conn::RedisConn;

/// How many replicas must have an operation's writes before it answers, and how long it
/// waits for them (`WAIT`). The master's writes are asynchronous: without it, a failover
/// right after an answer can lose what was answered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Replication {
    pub replicas: u32,
    pub timeout: Duration,
}

/// The commands of one store operation, in stages: a stage's commands run only after every
/// command of the stages before it has answered (the index entry before the token, say).
///
/// On one node (standalone, sentinel) they go out as one pipeline: Redis runs a
/// connection's commands in order, so the stages cost no extra round trip. On a cluster,
/// where the keys of one operation sit on different slots (and nodes), each stage's
/// commands are sent at once, each on its own (see `run_staged`), stage after stage.
#[derive(Default)]
pub struct Ops {
    ops: Vec<Op>,
    stage: usize,
    /// Replicas the commands of the current stage, and those added after, must reach
    /// before the operation answers.
    replicated: Option<Replication>,
    /// On one node, one `MULTI`/`EXEC` transaction.
    atomic: bool,
}

struct Op {
    /// The slot of its key (every command of an `Ops` is on one key, or on keys of one
    /// slot).
    slot: u16,
    cmd: Cmd,
    keep: bool,
    stage: usize,
    replicated: Option<Replication>,
}

impl Ops {
    pub fn new() -> Self {
        Self::default()
    }

    /// A command on one key, its answer kept.
    pub fn keep(&mut self, key: &[u8], cmd: Cmd) -> &mut Self {
        self.push(slot_of(key), cmd, true)
    }

    /// A command on one key, its answer dropped (an error still fails the operation).
    pub fn ignore(&mut self, key: &[u8], cmd: Cmd) -> &mut Self {
        self.push(slot_of(key), cmd, false)
    }

    /// The commands added after this run after every command added before it answered.
    pub fn then(&mut self) -> &mut Self {
        if self.ops.last().is_some_and(|op| op.stage == self.stage) {
            self.stage += 1;
        }
        self
    }

    /// The commands of the current stage, and every one added after (until this is
    /// called again), must have reached `replication`'s replicas before `run` answers
    /// (nothing when `None`): a `WAIT` after each such command on a cluster, one after
    /// the pipeline on one node (where replicas receive a connection's writes in order,
    /// so it covers every command before it); fewer replicas in time is an error (the
    /// caller answers 503), though the commands ran.
    pub fn replicated(&mut self, replication: Option<Replication>) -> &mut Self {
        let replication = replication.filter(|r| r.replicas > 0);
        for op in self.ops.iter_mut().filter(|op| op.stage == self.stage) {
            op.replicated = replication;
        }
        self.replicated = replication;
        self
    }

    /// On one node (standalone, sentinel), the commands run as one `MULTI`/`EXEC`
    /// transaction (its `WAIT`, when replicated, right after `EXEC` in the same
    /// pipeline): no other client's command runs between them, and a replica applies all
    /// of them or none (a transaction its link cut short is discarded), so a failover
    /// keeps them together. No effect on a cluster, where they span nodes.
    pub fn atomic(&mut self) -> &mut Self {
        self.atomic = true;
        self
    }

    /// Adds `other`'s commands, its first stage joining the current one.
    pub fn append(&mut self, other: Ops) -> &mut Self {
        let base = self.stage;
        for mut op in other.ops {
            op.stage += base;
            self.stage = self.stage.max(op.stage);
            self.ops.push(op);
        }
        self
    }

    fn push(&mut self, slot: u16, cmd: Cmd, keep: bool) -> &mut Self {
        self.ops.push(Op {
            slot,
            cmd,
            keep,
            stage: self.stage,
            replicated: self.replicated,
        });
        self
    }

    /// Runs every command; the kept answers, in order, as `T` (a tuple or a vector).
    pub async fn run<T: FromRedisValue>(&self, conn: &RedisConn) -> RedisResult<T> {
        if self.ops.is_empty() {
            // Nothing to send (an empty pipeline is not sent: a connection would wait for
            // answers that never come).
            return Ok(redis::from_redis_value(Value::Array(Vec::new()))?);
        }
        let kept = match conn {
            RedisConn::Cluster(..) => self.run_staged(conn).await?,
            _ => {
                // MULTI … EXEC by hand rather than redis-rs's atomic pipeline, so that the
                // `WAIT` follows the transaction in the same pipeline: sent on its own,
                // it could go out on a reconnected connection, which has written nothing
                // and so confirms at once.
                let mut pipe = redis::pipe();
                if self.atomic {
                    pipe.cmd("MULTI").ignore();
                }
                for op in &self.ops {
                    pipe.add_command(op.cmd.clone());
                    if self.atomic || !op.keep {
                        pipe.ignore();
                    }
                }
                if self.atomic {
                    pipe.cmd("EXEC");
                }
                let replicated = self.most_replicated();
                if let Some(r) = &replicated {
                    pipe.add_command(wait(r));
                }
                let mut conn = conn.clone();
                let mut answers = pipe.query_async::<Vec<Value>>(&mut conn).await?;
                if let Some(r) = &replicated {
                    check_replicas(r, answers.pop())?;
                }
                if self.atomic {
                    self.kept_of_transaction(answers.pop())?
                } else {
                    answers
                }
            }
        };
        Ok(redis::from_redis_value(Value::Array(kept))?)
    }

    /// The kept answers out of `EXEC`'s, refusing the whole operation when any of its
    /// commands failed (inside a transaction an error is an element, not the answer).
    fn kept_of_transaction(&self, exec: Option<Value>) -> RedisResult<Vec<Value>> {
        let Some(Value::Array(done)) = exec else {
            return Err(RedisError::from((
                redis::ErrorKind::Io,
                "transaction not run",
                format!("EXEC answered {exec:?}"),
            )));
        };
        if let Some(Value::ServerError(e)) =
            done.iter().find(|v| matches!(v, Value::ServerError(_)))
        {
            return Err(e.clone().into());
        }
        Ok(self
            .ops
            .iter()
            .zip(done)
            .filter(|(op, _)| op.keep)
            .map(|(_, value)| value)
            .collect())
    }

    /// The strictest replication any command asks for (one node's single `WAIT`).
    fn most_replicated(&self) -> Option<Replication> {
        self.ops
            .iter()
            .filter_map(|op| op.replicated)
            .reduce(|a, b| Replication {
                replicas: a.replicas.max(b.replicas),
                timeout: a.timeout.max(b.timeout),
            })
    }

    async fn run_staged(&self, conn: &RedisConn) -> RedisResult<Vec<Value>> {
        let mut answers: Vec<Option<Value>> = vec![None; self.ops.len()];
        for stage in 0..=self.stage {
            // Each command of this stage alone (with its `WAIT`, when replicated): the
            // cluster client answers a pipeline with its first refused command's error
            // only, so a pipeline refused in part (an `ASK` for a key a `MIGRATE` moved
            // between two commands) could not be told from one refused whole, and could
            // not be sent again. One command is refused whole or runs; `conn.rs` follows
            // its `MOVED` or `ASK`. (The multiplexed connection to each node pipelines
            // them all the same.)
            let groups: Vec<(u16, Vec<usize>)> = self
                .ops
                .iter()
                .enumerate()
                .filter(|(_, op)| op.stage == stage)
                .map(|(i, op)| (op.slot, vec![i]))
                .collect();
            let sent = groups.into_iter().map(|(_, members)| {
                let mut conn = conn.clone();
                async move {
                    let replicated = members.first().and_then(|&i| self.ops[i].replicated);
                    let values: Vec<Value> = match (&members[..], &replicated) {
                        // Alone, so that a refusal of it (MOVED, ASK) may be resent.
                        ([single], None) => {
                            vec![self.ops[*single].cmd.query_async(&mut conn).await?]
                        }
                        _ => {
                            let mut pipe = redis::pipe();
                            for &i in &members {
                                pipe.add_command(self.ops[i].cmd.clone());
                            }
                            if let Some(r) = &replicated {
                                pipe.add_command(wait(r));
                            }
                            let mut values: Vec<Value> = pipe.query_async(&mut conn).await?;
                            if let Some(r) = &replicated {
                                check_replicas(r, values.pop())?;
                            }
                            values
                        }
                    };
                    Ok::<_, RedisError>(members.into_iter().zip(values).collect::<Vec<_>>())
                }
            });
            for group in futures_util::future::join_all(sent).await {
                for (i, value) in group? {
                    answers[i] = Some(value);
                }
            }
        }
        Ok(self
            .ops
            .iter()
            .zip(answers)
            .filter(|(op, _)| op.keep)
            .map(|(_, value)| value.unwrap_or(Value::Nil))
            .collect())
    }
}

/// The cluster slot of a key: CRC16 (XMODEM) of the key, or of its hash tag (the text
/// between the first `{` and the next `}`, when not empty), modulo 16384.
pub fn slot_of(key: &[u8]) -> u16 {
    let tagged = key.iter().position(|&b| b == b'{').and_then(|open| {
        let rest = &key[open + 1..];
        rest.iter()
            .position(|&b| b == b'}')
            .filter(|&close| close > 0)
            .map(|close| &rest[..close])
    });
    crc16::State::<crc16::XMODEM>::calculate(tagged.unwrap_or(key)) % 16384
}

/// `WAIT replicas timeout-ms`.
fn wait(r: &Replication) -> Cmd {
    redis::cmd("WAIT")
        .arg(r.replicas)
        .arg(
            u64::try_from(r.timeout.as_millis())
                .unwrap_or(u64::MAX)
                .max(1),
        )
        .clone()
}

/// The answer of `WAIT`: enough replicas, or an error saying how many there were.
fn check_replicas(r: &Replication, answer: Option<Value>) -> RedisResult<()> {
    let got = answer.map(i64::from_redis_value).transpose()?.unwrap_or(0);
    if got >= i64::from(r.replicas) {
        return Ok(());
    }
    Err(RedisError::from((
        redis::ErrorKind::Io,
        "not replicated in time",
        format!(
            "{got} of {} replica(s) confirmed the write within {:?}",
            r.replicas, r.timeout
        ),
    )))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slots_match_redis_cluster_keyslot() {
        // Values from `CLUSTER KEYSLOT` on Redis 7.
        assert_eq!(slot_of(b"foo"), 12182);
        assert_eq!(slot_of(b"bar"), 5061);
        assert_eq!(slot_of(b"{user1000}.following"), slot_of(b"user1000"));
        assert_eq!(slot_of(b"foo{}{bar}"), slot_of(b"foo{}{bar}"));
        assert_ne!(slot_of(b"foo{}{bar}"), slot_of(b"bar"));
        assert_eq!(slot_of(b"foo{{bar}}zap"), slot_of(b"{bar"));
    }

    #[test]
    fn stages_only_split_where_commands_were_added() {
        let mut ops = Ops::new();
        ops.then();
        ops.ignore(b"a", redis::cmd("GET").arg("a").clone());
        ops.then().then();
        ops.keep(b"b", redis::cmd("GET").arg("b").clone());
        assert_eq!(ops.ops[0].stage, 0);
        assert_eq!(ops.ops[1].stage, 1);
    }

    #[test]
    fn replication_applies_to_its_stage_and_what_follows() {
        let r = Replication {
            replicas: 1,
            timeout: Duration::from_millis(250),
        };
        let mut ops = Ops::new();
        ops.ignore(b"a", redis::cmd("SET").arg("a").arg(1).clone())
            .then()
            .ignore(b"b", redis::cmd("SET").arg("b").arg(1).clone())
            .replicated(Some(r))
            .keep(b"c", redis::cmd("GET").arg("c").clone());
        let asked: Vec<_> = ops.ops.iter().map(|op| op.replicated).collect();
        assert_eq!(asked, [None, Some(r), Some(r)]);
        assert_eq!(ops.most_replicated(), Some(r));
        // Zero replicas is no wait.
        ops.replicated(Some(Replication { replicas: 0, ..r }));
        assert_eq!(ops.ops[2].replicated, None);
        assert_eq!(Ops::new().most_replicated(), None);
    }
}

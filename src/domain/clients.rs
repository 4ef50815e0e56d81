//! Clients as every endpoint finds them: from memory, read again from the records at
//! most every `Rules::client_cache`, so that a gateway that introspects every request (or
//! an app's logins) costs no SQL query per call. A change made with the CLI (disabled,
//! expired, new secret) is seen by every instance within that time. While the records
//! cannot be read, the last copy read keeps serving: no change can be made meanwhile
//! (the CLI writes to the same database).
//!
//! App keys that do not exist are kept apart, in a bounded set of their own: probing for
//! them can never push a real client out (introspection keeps working while the database
//! is down), and each client network may make only `ip_unknown_clients` lookups of them
//! per window before it is refused (429) without a query.
use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use super::{DomainError, Engine};
use crate::store::{Client, ClientRecords, Counters};

/// App keys known not to exist, kept at most: past it that set starts over (the clients
/// that exist are never dropped for it).
const MAX_UNKNOWN: usize = 10_000;

/// A client as read (`None`: no such client), shared rather than copied on every hit,
/// and when it was read.
type Entry = (Option<Arc<Client>>, Instant);

/// The clients read recently, by app_key.
pub struct ClientCache {
    ttl: Duration,
    /// Clients that exist: as many as the records hold.
    known: Mutex<HashMap<String, Entry>>,
    /// App keys that did not exist when read.
    unknown: Mutex<HashMap<String, Instant>>,
}

impl ClientCache {
    pub fn new(ttl: Duration) -> Self {
        Self {
            ttl,
            known: Mutex::new(HashMap::new()),
            unknown: Mutex::new(HashMap::new()),
        }
    }

    /// The entry for `app_key`, and whether it is still fresh.
    fn get(&self, app_key: &str) -> Option<(Option<Arc<Client>>, bool)> {
        let fresh = |read: &Instant| read.elapsed() < self.ttl;
        if let Some((client, read)) = self.known.lock().ok()?.get(app_key) {
            return Some((client.clone(), fresh(read)));
        }
        let unknown = self.unknown.lock().ok()?;
        unknown.get(app_key).map(|read| (None, fresh(read)))
    }

    fn put(&self, app_key: &str, client: Option<Arc<Client>>) {
        if self.ttl.is_zero() {
            return;
        }
        let now = Instant::now();
        match client {
            Some(client) => {
                if let Ok(mut unknown) = self.unknown.lock() {
                    unknown.remove(app_key);
                }
                if let Ok(mut known) = self.known.lock() {
                    known.insert(app_key.to_owned(), (Some(client), now));
                }
            }
            None => {
                // A client deleted from the records is forgotten as known.
                if let Ok(mut known) = self.known.lock() {
                    known.remove(app_key);
                }
                if let Ok(mut unknown) = self.unknown.lock() {
                    if unknown.len() >= MAX_UNKNOWN && !unknown.contains_key(app_key) {
                        unknown.clear();
                    }
                    unknown.insert(app_key.to_owned(), now);
                }
            }
        }
    }

    /// Forgets a client (this instance changed it): the next call reads the records.
    pub fn forget(&self, app_key: &str) {
        if let Ok(mut known) = self.known.lock() {
            known.remove(app_key);
        }
        if let Ok(mut unknown) = self.unknown.lock() {
            unknown.remove(app_key);
        }
    }
}

impl<T: Counters, R: ClientRecords> Engine<T, R> {
    /// The enabled client with this app_key (1002 otherwise), as `cached_client` finds it.
    pub(crate) async fn client(
        &self,
        appid: &str,
        from: IpAddr,
    ) -> Result<Arc<Client>, DomainError> {
        match self.cached_client(appid, from).await? {
            Some(c) if !c.disabled => Ok(c),
            _ => Err(DomainError::UnknownClient),
        }
    }

    /// The client with this app_key as of at most `client_cache` ago; the last copy read
    /// when the records cannot be read now. An app key never seen costs `from`'s network
    /// one lookup of its budget (refused past it, before any query).
    pub(crate) async fn cached_client(
        &self,
        app_key: &str,
        from: IpAddr,
    ) -> Result<Option<Arc<Client>>, DomainError> {
        let cached = self.clients.get(app_key);
        match &cached {
            Some((client, true)) => return Ok(client.clone()),
            // Never seen, or known not to exist: a query only within the budget.
            None | Some((None, false)) => self.unknown_clients_exhausted(from).await?,
            Some((Some(_), false)) => {}
        }
        match self.records.client(app_key).await {
            Ok(client) => {
                let client = client.map(Arc::new);
                self.clients.put(app_key, client.clone());
                if client.is_none() {
                    self.count_unknown_client(from).await?;
                }
                Ok(client)
            }
            Err(e) => match cached {
                Some((client, _)) => {
                    tracing::debug!(error = %e, "records unreadable: the last copy of the client serves");
                    Ok(client)
                }
                None => Err(e.into()),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::secret::Secret;

    fn client(app_key: &str) -> Arc<Client> {
        Arc::new(Client {
            app_key: app_key.into(),
            app_secret: Secret::new("s"),
            expire_time: None,
            strict_verify: 1,
            token_expire_time: 60,
            allow_nopwd: false,
            disabled: false,
        })
    }

    #[test]
    fn unknown_app_keys_never_push_a_client_out() {
        let cache = ClientCache::new(Duration::from_secs(60));
        cache.put("real", Some(client("real")));
        for n in 0..=MAX_UNKNOWN * 2 {
            cache.put(&format!("probe-{n}"), None);
        }
        let (found, fresh) = cache.get("real").expect("still cached");
        assert!(fresh && found.is_some_and(|c| c.app_key == "real"));
        assert!(cache.unknown.lock().unwrap().len() <= MAX_UNKNOWN);
        // A key once unknown and then created is known at once.
        cache.put("probe-3", Some(client("probe-3")));
        assert!(cache.get("probe-3").unwrap().0.is_some());
    }
}

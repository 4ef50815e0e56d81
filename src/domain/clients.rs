//! Clients as the OAuth endpoints (token, introspection, revocation) authenticate them:
//! from memory, read again from the records at most every `Rules::client_cache`, so that
//! a gateway that introspects every request costs no SQL query per call. A change made
//! with the CLI (disabled, expired, new secret) is seen by every instance within that
//! time. While the records cannot be read, the last copy read keeps serving: no change
//! can be made meanwhile (the CLI writes to the same database).
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use super::{DomainError, Engine};
use crate::store::{Client, RecordStore};

/// Clients kept at most (app keys that do not exist are kept too, so that probing for
/// them costs the database once per interval): past it the cache starts over.
const MAX_ENTRIES: usize = 10_000;

/// A client as read (`None`: no such client), shared rather than copied on every hit
/// (introspection reads one per call), and when it was read.
type Entry = (Option<Arc<Client>>, Instant);

/// The clients read recently, by app_key.
pub struct ClientCache {
    ttl: Duration,
    entries: Mutex<HashMap<String, Entry>>,
}

impl ClientCache {
    pub fn new(ttl: Duration) -> Self {
        Self {
            ttl,
            entries: Mutex::new(HashMap::new()),
        }
    }

    /// The entry for `app_key`, and whether it is still fresh.
    fn get(&self, app_key: &str) -> Option<(Option<Arc<Client>>, bool)> {
        let entries = self.entries.lock().ok()?;
        let (client, read) = entries.get(app_key)?;
        Some((client.clone(), read.elapsed() < self.ttl))
    }

    fn put(&self, app_key: &str, client: Option<Arc<Client>>) {
        if self.ttl.is_zero() {
            return;
        }
        if let Ok(mut entries) = self.entries.lock() {
            if entries.len() >= MAX_ENTRIES && !entries.contains_key(app_key) {
                entries.clear();
            }
            entries.insert(app_key.to_owned(), (client, Instant::now()));
        }
    }
}

impl<T, R: RecordStore> Engine<T, R> {
    /// The client with this app_key as of at most `client_cache` ago; the last copy read
    /// when the records cannot be read now.
    pub(crate) async fn cached_client(
        &self,
        app_key: &str,
    ) -> Result<Option<Arc<Client>>, DomainError> {
        let cached = self.clients.get(app_key);
        if let Some((client, true)) = cached {
            return Ok(client);
        }
        match self.records.client(app_key).await {
            Ok(client) => {
                let client = client.map(Arc::new);
                self.clients.put(app_key, client.clone());
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

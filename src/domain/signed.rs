//! The client check of the account endpoints: the client exists and is enabled (1002),
//! has not expired (3), and signed the request (1003). Their requests carry no `time`,
//! so there is no freshness or replay check.

use std::net::IpAddr;
use std::sync::Arc;

use super::{sign, DomainError, Engine};
use crate::store::{Client, ClientRecords, Counters};

impl<T: Counters, R: ClientRecords> Engine<T, R> {
    /// The client `appid`, once `signature` is found to be MD5(parts… + its secret);
    /// `from` is where the request came from (the budget of unknown app keys).
    pub(crate) async fn signed_client(
        &self,
        appid: &str,
        from: IpAddr,
        parts: &[&str],
        signature: &str,
    ) -> Result<Arc<Client>, DomainError> {
        let client = self.client(appid, from).await?;
        if client
            .expire_time
            .is_some_and(|t| t <= crate::clock::utc_now())
        {
            return Err(DomainError::ClientExpired);
        }
        if !sign::verify(parts, &client.app_secret, signature) {
            return Err(DomainError::BadSignature);
        }
        Ok(client)
    }
}

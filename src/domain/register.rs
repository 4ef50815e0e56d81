//! check_user and doaction: sign-up (`flag` 1) and password change (`flag` 2), with the
//! verification code when the client forces codes (`strict_verify` 1).
use std::net::IpAddr;

use super::account::{self, new_name_ok, Found};
use super::delivery::Purpose;
use super::verify::{purpose, username_ok, CodeOwner};
use super::{required, DomainError, Engine};
use crate::store::{ClientRecords, NewUser, StoreError, TokenBackend, UserRecords};

/// A doaction request as it arrived (every field still text).
#[derive(Debug)]
pub struct Action<'a> {
    pub username: Option<&'a str>,
    pub password: Option<&'a str>,
    /// The verification code; optional when the client ignores codes.
    pub verify: Option<&'a str>,
    /// 1: register, 2: change password.
    pub flag: Option<&'a str>,
    pub bundleid: Option<&'a str>,
    pub appid: Option<&'a str>,
    pub signature: Option<&'a str>,
    /// Where the request came from: kept as `reg_ip` of a new account; the network whose
    /// code is checked.
    pub client_ip: IpAddr,
}

/// The widest `bundle_id` the account table holds.
const MAX_BUNDLE_ID: usize = 128;

impl<T: TokenBackend, R: ClientRecords + UserRecords> Engine<T, R> {
    /// check_user: whether the name is taken (an account holds it or a look-alike of it:
    /// a sign-up of it would be refused).
    pub async fn check_user(&self, username: Option<&str>) -> Result<bool, DomainError> {
        let username = required(username, "username")?;
        username_ok(username)?;
        Ok(self.find_user(username).await?.taken())
    }

    /// doaction: registers a user or sets a new password (which, as `set_password`,
    /// revokes every live token of the user and lifts a login lockout).
    pub async fn doaction(&self, action: &Action<'_>) -> Result<(), DomainError> {
        // Parameters (1001). An absent code signs as "".
        let username = required(action.username, "username")?;
        let password = required(action.password, "password")?;
        let flag = required(action.flag, "flag")?;
        let bundleid = required(action.bundleid, "bundleid")?;
        let appid = required(action.appid, "appid")?;
        let signature = required(action.signature, "signature")?;
        let verify = action.verify.unwrap_or("");
        let purpose = purpose(flag)?;
        username_ok(username)?;
        if bundleid.chars().count() > MAX_BUNDLE_ID {
            return Err(DomainError::InvalidParam("bundleid"));
        }

        // Client (1002), expiry (3), signature (1003).
        let client = self
            .signed_client(
                appid,
                action.client_ip,
                &[username, password, verify, flag, bundleid, appid],
                signature,
            )
            .await?;

        // Sign-up of a taken name (1012: a look-alike of an account too), password change
        // of a name that is no account's own spelling (1018).
        let net = self.net(action.client_ip);
        let (user, owner) = match (purpose, self.find_user(username).await?) {
            (Purpose::Register, found) if found.taken() => return Err(DomainError::AlreadyExists),
            (Purpose::Register, _) => {
                new_name_ok(username)?;
                (None, CodeOwner::new_name(username, net))
            }
            (Purpose::ResetPassword, Found::Same(user)) => {
                let owner = CodeOwner::account(&user.account, net);
                (Some(user), owner)
            }
            (Purpose::ResetPassword, _) => return Err(DomainError::UserMissing),
        };

        // The code (1017), unless the client ignores codes.
        let forced = client.strict_verify != 2;
        if forced {
            self.check_code(purpose, &owner, verify).await?;
        }

        match user {
            None => {
                let new = NewUser {
                    account: username.to_owned(),
                    password_hash: self.passwords.hash(password).await?,
                    account_type: account::account_type(username),
                    app_key: client.app_key.clone(),
                    reg_ip: action.client_ip.to_string(),
                    bundle_id: bundleid.to_owned(),
                };
                self.records.create_user(&new).await.map_err(|e| match e {
                    // Two sign-ups of one name at once: the second loses here.
                    StoreError::Conflict => DomainError::AlreadyExists,
                    other => DomainError::Store(other),
                })?;
                tracing::info!(username, app_key = %client.app_key, ip = %action.client_ip, "user registered");
            }
            Some(user) => {
                // The stored spelling of the name: tokens are indexed under it.
                let revoked = self.set_password(&user.account, password).await?;
                tracing::info!(username = %user.account, revoked, "password changed; live tokens revoked");
            }
        }

        if forced {
            self.consume_code(purpose, &owner).await?;
        }
        Ok(())
    }
}

//! check_user and doaction: sign-up (`flag` 1) and password change (`flag` 2), with the
//! verification code when the client forces codes (`strict_verify` 1).
use super::delivery::Purpose;
use super::verify::{purpose, username_ok};
use super::{account, required, DomainError, Engine};
use crate::store::{NewUser, RecordStore, StoreError, TokenBackend};

/// A doaction request as it arrived (every field still text).
#[derive(Debug, Default)]
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
    /// Where the request came from, kept as `reg_ip` of a new account.
    pub client_ip: String,
}

/// The widest `bundle_id` the account table holds.
const MAX_BUNDLE_ID: usize = 128;

impl<T: TokenBackend, R: RecordStore> Engine<T, R> {
    /// check_user: whether an account of that name exists.
    pub async fn check_user(&self, username: Option<&str>) -> Result<bool, DomainError> {
        let username = required(username, "username")?;
        username_ok(username)?;
        Ok(self.records.user(username).await?.is_some())
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
                &[username, password, verify, flag, bundleid, appid],
                signature,
            )
            .await?;

        // Sign-up of an existing user (1012), password change of a missing one (1018).
        let user = self.records.user(username).await?;
        match (purpose, &user) {
            (Purpose::Register, Some(_)) => return Err(DomainError::AlreadyExists),
            (Purpose::ResetPassword, None) => return Err(DomainError::UserMissing),
            _ => {}
        }

        // The code (1017), unless the client ignores codes.
        let forced = client.strict_verify != 2;
        if forced {
            self.check_code(purpose, username, verify).await?;
        }

        match user {
            None => {
                let new = NewUser {
                    account: username.to_owned(),
                    password_hash: self.passwords.hash(password).await?,
                    account_type: account::account_type(username),
                    app_key: client.app_key.clone(),
                    reg_ip: action.client_ip.clone(),
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
            self.consume_code(purpose, username).await?;
        }
        Ok(())
    }
}

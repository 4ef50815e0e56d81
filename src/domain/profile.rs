//! get_userinfo and update_userinfo: a user's profile (nickname, avatar URL) and the
//! facts of the registration.
use std::net::IpAddr;

use super::verify::username_ok;
use super::{required, DomainError, Engine};
use crate::store::{ClientRecords, Counters, Profile, ProfileRecords, UserRecords};

/// A nickname: 1 to 32 characters, none of them a control character.
const MAX_NICKNAME: usize = 32;
/// An avatar URL: empty, or an http(s) URL of at most 255 characters (the column width).
const MAX_HEADURL: usize = 255;

/// An update_userinfo request as it arrived.
#[derive(Debug)]
pub struct ProfileUpdate<'a> {
    pub account: Option<&'a str>,
    pub nickname: Option<&'a str>,
    /// Absent is the same as empty: no avatar.
    pub headurl: Option<&'a str>,
    pub appid: Option<&'a str>,
    pub signature: Option<&'a str>,
    /// Where it came from (the budget of unknown app keys).
    pub client_ip: IpAddr,
}

fn nickname_ok(nickname: &str) -> Result<(), DomainError> {
    let n = nickname.chars().count();
    if n == 0 || n > MAX_NICKNAME || nickname.chars().any(char::is_control) {
        return Err(DomainError::InvalidParam("nickname"));
    }
    Ok(())
}

fn headurl_ok(headurl: &str) -> Result<(), DomainError> {
    if headurl.is_empty() {
        return Ok(());
    }
    let bad = || DomainError::InvalidParam("headurl");
    if headurl.chars().count() > MAX_HEADURL || headurl.chars().any(char::is_whitespace) {
        return Err(bad());
    }
    let url = url::Url::parse(headurl).map_err(|_| bad())?;
    if !matches!(url.scheme(), "http" | "https") || url.host_str().is_none_or(str::is_empty) {
        return Err(bad());
    }
    Ok(())
}

impl<T: Counters, R: ClientRecords + UserRecords + ProfileRecords> Engine<T, R> {
    /// get_userinfo: signed with account + appid; a missing account is 1006, and so is a
    /// name that is no account's own spelling.
    pub async fn user_info(
        &self,
        account: Option<&str>,
        appid: Option<&str>,
        signature: Option<&str>,
        from: IpAddr,
    ) -> Result<Profile, DomainError> {
        let account = required(account, "account")?;
        let appid = required(appid, "appid")?;
        let signature = required(signature, "signature")?;
        username_ok(account)?;
        self.signed_client(appid, from, &[account, appid], signature)
            .await?;
        let user = self
            .find_user(account)
            .await?
            .same()
            .ok_or(DomainError::NotFound)?;
        self.records
            .profile(&user.account)
            .await?
            .ok_or(DomainError::NotFound)
    }

    /// update_userinfo: signed with account + nickname + headurl + appid.
    pub async fn update_user_info(&self, update: &ProfileUpdate<'_>) -> Result<(), DomainError> {
        let account = required(update.account, "account")?;
        let nickname = required(update.nickname, "nickname")?;
        let headurl = update.headurl.unwrap_or("");
        let appid = required(update.appid, "appid")?;
        let signature = required(update.signature, "signature")?;
        username_ok(account)?;
        nickname_ok(nickname)?;
        headurl_ok(headurl)?;
        self.signed_client(
            appid,
            update.client_ip,
            &[account, nickname, headurl, appid],
            signature,
        )
        .await?;
        let user = self
            .find_user(account)
            .await?
            .same()
            .ok_or(DomainError::NotFound)?;
        if !self
            .records
            .update_profile(&user.account, nickname, headurl)
            .await?
        {
            return Err(DomainError::NotFound);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nicknames_are_1_to_32_characters() {
        assert!(nickname_ok("a").is_ok());
        assert!(nickname_ok(&"字".repeat(32)).is_ok());
        assert!(nickname_ok(&"字".repeat(33)).is_err());
        assert!(nickname_ok("").is_err());
        assert!(nickname_ok("tab\there").is_err());
    }

    #[test]
    fn headurl_is_empty_or_an_http_url() {
        assert!(headurl_ok("").is_ok());
        assert!(headurl_ok("https://cdn.example.com/a.png").is_ok());
        assert!(headurl_ok("http://127.0.0.1:8080/x").is_ok());
        assert!(headurl_ok("ftp://example.com/a.png").is_err());
        assert!(headurl_ok("javascript:alert(1)").is_err());
        assert!(headurl_ok("https://").is_err());
        assert!(headurl_ok("not a url").is_err());
        assert!(headurl_ok("/relative.png").is_err());
        let long = format!("https://example.com/{}", "a".repeat(236));
        assert_eq!(long.len(), 256);
        assert!(headurl_ok(&long).is_err());
        assert!(headurl_ok(&long[..255]).is_ok());
    }
}

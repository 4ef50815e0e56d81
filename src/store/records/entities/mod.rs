//! sea-orm entities for the seed's tables; imported only by `records::sea`.
pub mod client;
pub mod signing_key;
pub mod user_account;
pub mod user_info;

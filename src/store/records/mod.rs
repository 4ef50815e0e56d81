//! Record store implementations: sea-orm over MySQL/MariaDB or SQLite.
mod entities;
pub mod sea;

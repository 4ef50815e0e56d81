//! Record store implementations: sea-orm over MySQL/MariaDB or SQLite.
mod entities;
mod legacy;
pub mod sea;
pub mod zone;

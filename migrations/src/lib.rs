//! tokencache's schema as sea-orm migrations. Each migration is frozen (a file, or a
//! folder of files) with its own iden enum: never change what one that has landed does,
//! add a new one.
pub use sea_orm_migration::prelude::*;

mod m20261122_000001_create_tables;
mod m20261130_000001_adopt_xxjwxc_oauth2;
mod m20261206_000001_signing_keys;

/// The check that `tokencache migrate` runs before anything touches the database: what
/// adopting an xxjwxc/oauth2 database would change, or why it cannot be adopted.
pub use m20261130_000001_adopt_xxjwxc_oauth2::{
    plan as adoption_plan, recorded as adoption_recorded,
};

/// The ordered list of every migration; `tokencache migrate` runs the pending ones.
pub struct Migrator;

#[async_trait::async_trait]
impl MigratorTrait for Migrator {
    fn migrations() -> Vec<Box<dyn MigrationTrait>> {
        vec![
            Box::new(m20261122_000001_create_tables::Migration),
            Box::new(m20261130_000001_adopt_xxjwxc_oauth2::Migration),
            Box::new(m20261206_000001_signing_keys::Migration),
        ]
    }
}

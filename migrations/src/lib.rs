//! tokencache's schema as sea-orm migrations. Each migration is a frozen file with its
//! own iden enum: never edit one that has landed, add a new one.
pub use sea_orm_migration::prelude::*;

mod m20261122_000001_create_tables;

/// The ordered list of every migration; `tokencache migrate` runs the pending ones.
pub struct Migrator;

#[async_trait::async_trait]
impl MigratorTrait for Migrator {
    fn migrations() -> Vec<Box<dyn MigrationTrait>> {
        vec![Box::new(m20261122_000001_create_tables::Migration)]
    }
}

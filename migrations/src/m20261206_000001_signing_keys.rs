//! `tokencache_signing_key`: the keys that sign the JWTs handed to upstreams
//! (`--upstream-jwt`), shared by every instance of a fleet. A table of its own, which an
//! adopted xxjwxc/oauth2 database gains and the original never reads.
use sea_orm_migration::prelude::*;

pub struct Migration;

impl MigrationName for Migration {
    fn name(&self) -> &str {
        "m20261206_000001_signing_keys"
    }
}

#[derive(DeriveIden)]
enum TokencacheSigningKey {
    Table,
    Id,
    Kid,
    Algorithm,
    PrivateKey,
    PublishedAt,
    SignsFrom,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(TokencacheSigningKey::Table)
                    .if_not_exists()
                    .col(
                        ColumnDef::new(TokencacheSigningKey::Id)
                            .integer()
                            .not_null()
                            .auto_increment()
                            .primary_key(),
                    )
                    .col(
                        ColumnDef::new(TokencacheSigningKey::Kid)
                            .string_len(64)
                            .not_null()
                            .unique_key(),
                    )
                    .col(
                        ColumnDef::new(TokencacheSigningKey::Algorithm)
                            .string_len(16)
                            .not_null(),
                    )
                    // The private key, base64: as secret as the clients' app_secret.
                    .col(
                        ColumnDef::new(TokencacheSigningKey::PrivateKey)
                            .string_len(255)
                            .not_null(),
                    )
                    // Unix seconds: in the JWKS from then on; signs from `signs_from`.
                    .col(
                        ColumnDef::new(TokencacheSigningKey::PublishedAt)
                            .big_integer()
                            .not_null(),
                    )
                    .col(
                        ColumnDef::new(TokencacheSigningKey::SignsFrom)
                            .big_integer()
                            .not_null(),
                    )
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table(TokencacheSigningKey::Table).to_owned())
            .await
    }
}

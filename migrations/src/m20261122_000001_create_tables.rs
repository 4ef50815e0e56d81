//! The seed's three record tables (`oauth2_client_tbl`, `user_account_tbl`,
//! `user_info_tbl`) with every seed column, plus tokencache's own flags.
use sea_orm_migration::prelude::*;

pub struct Migration;

impl MigrationName for Migration {
    fn name(&self) -> &str {
        "m20261122_000001_create_tables"
    }
}

#[derive(DeriveIden)]
enum Oauth2ClientTbl {
    Table,
    Id,
    AppKey,
    AppSecret,
    ExpireTime,
    StrictVerify,
    TokenExpireTime,
    AllowNopwd,
    Disabled,
}

#[derive(DeriveIden)]
enum UserInfoTbl {
    Table,
    Id,
    Nickname,
    Headurl,
}

#[derive(DeriveIden)]
enum UserAccountTbl {
    Table,
    Id,
    Account,
    Password,
    AccountType,
    AppKey,
    UserInfoId,
    RegTime,
    RegIp,
    BundleId,
    Disabled,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(Oauth2ClientTbl::Table)
                    .if_not_exists()
                    .col(
                        ColumnDef::new(Oauth2ClientTbl::Id)
                            .integer()
                            .not_null()
                            .auto_increment()
                            .primary_key(),
                    )
                    .col(
                        ColumnDef::new(Oauth2ClientTbl::AppKey)
                            .string_len(128)
                            .not_null(),
                    )
                    .col(
                        ColumnDef::new(Oauth2ClientTbl::AppSecret)
                            .string_len(128)
                            .not_null(),
                    )
                    // NULL: the client never expires.
                    .col(
                        ColumnDef::new(Oauth2ClientTbl::ExpireTime)
                            .date_time()
                            .null(),
                    )
                    // 1: verification codes forced, 2: ignored (seed).
                    .col(
                        ColumnDef::new(Oauth2ClientTbl::StrictVerify)
                            .integer()
                            .not_null()
                            .default(1),
                    )
                    .col(
                        ColumnDef::new(Oauth2ClientTbl::TokenExpireTime)
                            .integer()
                            .not_null()
                            .default(7200),
                    )
                    .col(
                        ColumnDef::new(Oauth2ClientTbl::AllowNopwd)
                            .boolean()
                            .not_null()
                            .default(false),
                    )
                    .col(
                        ColumnDef::new(Oauth2ClientTbl::Disabled)
                            .boolean()
                            .not_null()
                            .default(false),
                    )
                    .index(
                        Index::create()
                            .name("uk_oauth2_client_app_key")
                            .col(Oauth2ClientTbl::AppKey)
                            .unique(),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(UserInfoTbl::Table)
                    .if_not_exists()
                    .col(
                        ColumnDef::new(UserInfoTbl::Id)
                            .integer()
                            .not_null()
                            .auto_increment()
                            .primary_key(),
                    )
                    .col(
                        ColumnDef::new(UserInfoTbl::Nickname)
                            .string_len(128)
                            .not_null()
                            .default(""),
                    )
                    .col(
                        ColumnDef::new(UserInfoTbl::Headurl)
                            .string_len(255)
                            .not_null()
                            .default(""),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(UserAccountTbl::Table)
                    .if_not_exists()
                    .col(
                        ColumnDef::new(UserAccountTbl::Id)
                            .integer()
                            .not_null()
                            .auto_increment()
                            .primary_key(),
                    )
                    .col(
                        ColumnDef::new(UserAccountTbl::Account)
                            .string_len(191)
                            .not_null(),
                    )
                    // An argon2id PHC string is ~100 characters; 255 leaves room for
                    // stronger parameters.
                    .col(
                        ColumnDef::new(UserAccountTbl::Password)
                            .string_len(255)
                            .not_null(),
                    )
                    // 1: phone number, 2: mail address, 3: other (seed).
                    .col(
                        ColumnDef::new(UserAccountTbl::AccountType)
                            .integer()
                            .not_null()
                            .default(3),
                    )
                    .col(
                        ColumnDef::new(UserAccountTbl::AppKey)
                            .string_len(128)
                            .not_null()
                            .default(""),
                    )
                    .col(ColumnDef::new(UserAccountTbl::UserInfoId).integer().null())
                    .col(
                        ColumnDef::new(UserAccountTbl::RegTime)
                            .date_time()
                            .not_null(),
                    )
                    .col(
                        ColumnDef::new(UserAccountTbl::RegIp)
                            .string_len(64)
                            .not_null()
                            .default(""),
                    )
                    .col(
                        ColumnDef::new(UserAccountTbl::BundleId)
                            .string_len(128)
                            .not_null()
                            .default(""),
                    )
                    .col(
                        ColumnDef::new(UserAccountTbl::Disabled)
                            .boolean()
                            .not_null()
                            .default(false),
                    )
                    .index(
                        Index::create()
                            .name("uk_user_account_account")
                            .col(UserAccountTbl::Account)
                            .unique(),
                    )
                    .to_owned(),
            )
            .await?;
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table(UserAccountTbl::Table).to_owned())
            .await?;
        manager
            .drop_table(Table::drop().table(UserInfoTbl::Table).to_owned())
            .await?;
        manager
            .drop_table(Table::drop().table(Oauth2ClientTbl::Table).to_owned())
            .await
    }
}

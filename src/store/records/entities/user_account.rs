//! `user_account_tbl`: one row per user account.
use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "user_account_tbl")]
pub struct Model {
    #[sea_orm(primary_key)]
    pub id: i32,
    #[sea_orm(unique)]
    pub account: String,
    pub password: String,
    pub account_type: i32,
    // NULL-able in an adopted xxjwxc/oauth2 table; never NULL in tokencache's own.
    pub app_key: Option<String>,
    pub user_info_id: Option<i32>,
    pub reg_time: Option<DateTime>,
    pub reg_ip: Option<String>,
    pub bundle_id: Option<String>,
    pub disabled: bool,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}

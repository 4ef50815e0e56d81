//! `oauth2_client_tbl`: the apps allowed to log users in.
use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "oauth2_client_tbl")]
pub struct Model {
    #[sea_orm(primary_key)]
    pub id: i32,
    #[sea_orm(unique)]
    pub app_key: String,
    pub app_secret: String,
    pub expire_time: Option<DateTime>,
    pub strict_verify: i32,
    pub token_expire_time: i32,
    pub allow_nopwd: bool,
    pub disabled: bool,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}

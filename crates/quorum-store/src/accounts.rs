//! Accounts: users, API tokens and web sessions.

use async_trait::async_trait;
use serde::Serialize;

use crate::Result;

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct User {
    pub id: i64,
    pub name: String,
    #[serde(skip)]
    pub password_hash: String,
    pub is_admin: bool,
    pub created_at: i64,
    /// When an administrator disabled the account (it cannot sign in or use a token).
    pub disabled_at: Option<i64>,
}

/// An API token or web session (a token named `web session`), without its secret.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Token {
    pub id: i64,
    pub user_id: i64,
    pub name: String,
    pub created_at: i64,
    /// `None`: never expires.
    pub expires_at: Option<i64>,
    pub last_used_at: Option<i64>,
}

#[derive(Debug, Clone)]
pub struct NewToken {
    pub user_id: i64,
    pub name: String,
    /// SHA-256 of the secret; the secret itself is never stored.
    pub hash: String,
    pub created_at: i64,
    pub expires_at: Option<i64>,
}

#[derive(Debug, Clone)]
pub struct NewUser {
    pub name: String,
    pub password_hash: String,
    pub is_admin: bool,
    pub created_at: i64,
}

#[async_trait]
pub trait Accounts {
    async fn create_user(&self, user: NewUser) -> Result<User>;
    async fn user_by_name(&self, name: &str) -> Result<Option<User>>;
    async fn user_by_id(&self, id: i64) -> Result<Option<User>>;
    async fn list_users(&self) -> Result<Vec<User>>;
    async fn create_token(&self, token: NewToken) -> Result<i64>;
    /// The owner of a token that has not expired at `now`, if the owner is not disabled.
    async fn user_by_token_hash(&self, token_hash: &str, now: i64)
    -> Result<Option<(User, Token)>>;
    /// Records a token's use, and moves its expiry (a web session's sliding expiry).
    async fn touch_token(&self, token_id: i64, now: i64, expires_at: Option<i64>) -> Result<()>;
    /// A user's tokens and sessions, oldest first (expired ones included until revoked).
    async fn tokens(&self, user_id: i64) -> Result<Vec<Token>>;
    /// Revokes one of a user's tokens; `false` when the user has no such token.
    async fn revoke_token(&self, user_id: i64, token_id: i64) -> Result<bool>;
    /// Revokes all of a user's tokens, or only those with this name; returns how many.
    async fn revoke_tokens(&self, user_id: i64, named: Option<&str>) -> Result<u64>;
    /// Revokes a token (a signed-out session); revoking an unknown token is not an error.
    async fn delete_token(&self, token_hash: &str) -> Result<()>;
    /// Disables an account (`Some(now)`: every token and session of it revoked in the same
    /// transaction) or enables it again (`None`); `false` when the user does not exist.
    async fn set_user_disabled(&self, user_id: i64, disabled_at: Option<i64>) -> Result<bool>;
    async fn set_password(&self, user_id: i64, password_hash: &str) -> Result<bool>;
}

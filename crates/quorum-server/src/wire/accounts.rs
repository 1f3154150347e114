//! Users, tokens, passwords.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// A user account (never its password hash).
#[derive(Debug, Serialize, ToSchema)]
pub struct User {
    pub id: i64,
    pub name: String,
    pub is_admin: bool,
    /// Unix milliseconds.
    pub created_at: i64,
    /// When an administrator disabled the account: it can neither sign in nor use a token.
    pub disabled_at: Option<i64>,
}

impl From<quorum_store::User> for User {
    fn from(user: quorum_store::User) -> Self {
        Self {
            id: user.id,
            name: user.name,
            is_admin: user.is_admin,
            created_at: user.created_at,
            disabled_at: user.disabled_at,
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct UserEnvelope {
    pub user: User,
}

impl From<quorum_store::User> for UserEnvelope {
    fn from(user: quorum_store::User) -> Self {
        Self { user: user.into() }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Users {
    pub users: Vec<User>,
}

/// An API token or web session, without its secret.
#[derive(Debug, Serialize, ToSchema)]
pub struct Token {
    pub id: i64,
    pub user_id: i64,
    pub name: String,
    pub created_at: i64,
    /// Unix milliseconds; none: it never expires.
    pub expires_at: Option<i64>,
    pub last_used_at: Option<i64>,
    /// A web session (signed in with a password), not an API token.
    pub session: bool,
}

impl From<quorum_app::accounts::TokenView> for Token {
    fn from(view: quorum_app::accounts::TokenView) -> Self {
        let token = view.token;
        Self {
            id: token.id,
            user_id: token.user_id,
            name: token.name,
            created_at: token.created_at,
            expires_at: token.expires_at,
            last_used_at: token.last_used_at,
            session: view.session,
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Tokens {
    pub tokens: Vec<Token>,
}

/// A new token's secret: shown this once, never stored.
#[derive(Debug, Serialize, ToSchema)]
pub struct NewTokenSecret {
    pub token: String,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewUser {
    pub name: String,
    /// 8 to 1000 characters.
    pub password: String,
    #[serde(default)]
    pub admin: bool,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewToken {
    /// 1 to 100 characters.
    #[serde(default = "default_token_name")]
    #[schema(default = "api")]
    pub name: String,
    /// Unix milliseconds; none: the token does not expire.
    #[serde(default)]
    pub expires_at: Option<i64>,
}

impl Default for NewToken {
    fn default() -> Self {
        Self {
            name: default_token_name(),
            expires_at: None,
        }
    }
}

fn default_token_name() -> String {
    "api".into()
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PasswordChange {
    pub current_password: String,
    pub new_password: String,
}

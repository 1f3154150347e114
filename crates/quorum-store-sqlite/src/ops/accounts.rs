//! Accounts: the SQL of the accounts context and the adapter of the `Accounts` port.

use async_trait::async_trait;
use quorum_store::Accounts;

use super::rows::*;
use super::*;
use crate::SqliteStore;

#[async_trait]
impl Accounts for SqliteStore {
    async fn create_user(&self, user: NewUser) -> Result<User> {
        self.write(move |c| create_user(c, user)).await
    }
    async fn user_by_name(&self, name: &str) -> Result<Option<User>> {
        let name = name.to_string();
        self.readers
            .run(move |c| user_where(c, "SELECT * FROM users WHERE name = ?1", &name))
            .await
    }
    async fn user_by_id(&self, id: i64) -> Result<Option<User>> {
        self.readers
            .run(move |c| user_where(c, "SELECT * FROM users WHERE id = ?1", &id))
            .await
    }
    async fn list_users(&self) -> Result<Vec<User>> {
        self.readers.run(list_users).await
    }
    async fn create_token(&self, token: NewToken) -> Result<i64> {
        self.write(move |c| create_token(c, &token)).await
    }
    async fn user_by_token_hash(
        &self,
        token_hash: &str,
        now: i64,
    ) -> Result<Option<(User, Token)>> {
        let hash = token_hash.to_string();
        self.readers
            .run(move |c| user_by_token_hash(c, &hash, now))
            .await
    }
    async fn touch_token(&self, token_id: i64, now: i64, expires_at: Option<i64>) -> Result<()> {
        self.write(move |c| touch_token(c, token_id, now, expires_at))
            .await
    }
    async fn tokens(&self, user_id: i64) -> Result<Vec<Token>> {
        self.readers.run(move |c| tokens(c, user_id)).await
    }
    async fn revoke_token(&self, user_id: i64, token_id: i64) -> Result<bool> {
        self.write(move |c| revoke_token(c, user_id, token_id))
            .await
    }
    async fn revoke_tokens(&self, user_id: i64, named: Option<&str>) -> Result<u64> {
        let named = named.map(str::to_string);
        self.write(move |c| revoke_tokens(c, user_id, named.as_deref()))
            .await
    }
    async fn set_user_disabled(&self, user_id: i64, disabled_at: Option<i64>) -> Result<bool> {
        self.write(move |c| set_user_disabled(c, user_id, disabled_at))
            .await
    }
    async fn set_password(&self, user_id: i64, password_hash: &str) -> Result<bool> {
        let hash = password_hash.to_string();
        self.write(move |c| set_password(c, user_id, &hash)).await
    }
    async fn delete_token(&self, token_hash: &str) -> Result<()> {
        let hash = token_hash.to_string();
        self.write(move |c| delete_token(c, &hash)).await
    }
}

pub fn create_user(conn: &Connection, user: NewUser) -> Result<User> {
    one(
        conn,
        "INSERT INTO users (name, password_hash, is_admin, created_at) VALUES (?1, ?2, ?3, ?4) RETURNING *",
        params![user.name, user.password_hash, i64::from(user.is_admin), user.created_at],
        user_from,
    )
    .map_err(|e| match e {
        StoreError::Conflict(_) => StoreError::Conflict(format!("a user named `{}` already exists", user.name)),
        other => other,
    })?
    .ok_or(StoreError::NotFound("user"))
}

pub fn user_where(
    conn: &Connection,
    sql: &str,
    value: &dyn rusqlite::ToSql,
) -> Result<Option<User>> {
    one(conn, sql, [value], user_from)
}

pub fn list_users(conn: &Connection) -> Result<Vec<User>> {
    all(conn, "SELECT * FROM users ORDER BY id", [], user_from)
}

pub fn create_token(conn: &Connection, token: &NewToken) -> Result<i64> {
    scalar(
        conn,
        "INSERT INTO api_tokens (user_id, name, token_hash, created_at, expires_at) VALUES (?1, ?2, ?3, ?4, ?5) RETURNING id",
        params![token.user_id, token.name, token.hash, token.created_at, token.expires_at],
    )?
    .ok_or(StoreError::NotFound("token"))
}

pub fn user_by_token_hash(
    conn: &Connection,
    hash: &str,
    now: i64,
) -> Result<Option<(User, Token)>> {
    let sql = format!(
        "SELECT u.*, {TOKEN_COLUMNS} FROM api_tokens t JOIN users u ON u.id = t.user_id
         WHERE t.token_hash = ?1 AND (t.expires_at IS NULL OR t.expires_at > ?2)
           AND u.disabled_at IS NULL"
    );
    one(conn, &sql, params![hash, now], |row| {
        Ok(match (user_from(row)?, token_from(row)?) {
            (Ok(user), Ok(token)) => Ok((user, token)),
            (Err(e), _) | (_, Err(e)) => Err(e),
        })
    })
}

pub fn touch_token(conn: &Connection, id: i64, now: i64, expires_at: Option<i64>) -> Result<()> {
    execute(
        conn,
        "UPDATE api_tokens SET last_used_at = ?2, expires_at = ?3 WHERE id = ?1",
        params![id, now, expires_at],
    )?;
    Ok(())
}

pub fn tokens(conn: &Connection, user_id: i64) -> Result<Vec<Token>> {
    let sql =
        format!("SELECT {TOKEN_COLUMNS} FROM api_tokens t WHERE t.user_id = ?1 ORDER BY t.id");
    all(conn, &sql, [user_id], token_from)
}

pub fn revoke_token(conn: &Connection, user_id: i64, id: i64) -> Result<bool> {
    Ok(execute(
        conn,
        "DELETE FROM api_tokens WHERE user_id = ?1 AND id = ?2",
        params![user_id, id],
    )? > 0)
}

pub fn revoke_tokens(conn: &Connection, user_id: i64, named: Option<&str>) -> Result<u64> {
    Ok(execute(
        conn,
        "DELETE FROM api_tokens WHERE user_id = ?1 AND (?2 IS NULL OR name = ?2)",
        params![user_id, named],
    )? as u64)
}

pub fn set_user_disabled(
    conn: &Connection,
    user_id: i64,
    disabled_at: Option<i64>,
) -> Result<bool> {
    let changed = execute(
        conn,
        "UPDATE users SET disabled_at = ?2 WHERE id = ?1",
        params![user_id, disabled_at],
    )?;
    if changed > 0 && disabled_at.is_some() {
        revoke_tokens(conn, user_id, None)?;
    }
    Ok(changed > 0)
}

pub fn set_password(conn: &Connection, user_id: i64, hash: &str) -> Result<bool> {
    Ok(execute(
        conn,
        "UPDATE users SET password_hash = ?2 WHERE id = ?1",
        params![user_id, hash],
    )? > 0)
}

pub fn delete_token(conn: &Connection, hash: &str) -> Result<()> {
    execute(conn, "DELETE FROM api_tokens WHERE token_hash = ?1", [hash])?;
    Ok(())
}

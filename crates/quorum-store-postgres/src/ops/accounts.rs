//! Accounts: the SQL of the accounts context and the adapter of the `Accounts` port.

use async_trait::async_trait;
use quorum_store::Accounts;

use super::rows::*;
use super::*;
use crate::PgStore;

#[async_trait]
impl Accounts for PgStore {
    async fn create_user(&self, user: NewUser) -> Result<User> {
        transaction!(self.pool, |conn| create_user(conn, user.clone()).await)
    }
    async fn user_by_name(&self, name: &str) -> Result<Option<User>> {
        user_where(
            &self.pool,
            "SELECT * FROM users WHERE name = $1",
            name.to_string(),
        )
        .await
    }
    async fn user_by_id(&self, id: i64) -> Result<Option<User>> {
        user_where(&self.pool, "SELECT * FROM users WHERE id = $1", id).await
    }
    async fn list_users(&self) -> Result<Vec<User>> {
        list_users(&self.pool).await
    }
    async fn create_token(&self, token: NewToken) -> Result<i64> {
        create_token(&self.pool, &token).await
    }
    async fn user_by_token_hash(
        &self,
        token_hash: &str,
        now: i64,
    ) -> Result<Option<(User, Token)>> {
        user_by_token_hash(&self.pool, token_hash, now).await
    }
    async fn touch_token(&self, token_id: i64, now: i64, expires_at: Option<i64>) -> Result<()> {
        sqlx::query("UPDATE api_tokens SET last_used_at = $2, expires_at = $3 WHERE id = $1")
            .bind(token_id)
            .bind(now)
            .bind(expires_at)
            .execute(&self.pool)
            .await
            .map_err(database_error)?;
        Ok(())
    }
    async fn tokens(&self, user_id: i64) -> Result<Vec<Token>> {
        tokens(&self.pool, user_id).await
    }
    async fn revoke_token(&self, user_id: i64, token_id: i64) -> Result<bool> {
        let done = sqlx::query("DELETE FROM api_tokens WHERE user_id = $1 AND id = $2")
            .bind(user_id)
            .bind(token_id)
            .execute(&self.pool)
            .await
            .map_err(database_error)?;
        Ok(done.rows_affected() > 0)
    }
    async fn revoke_tokens(&self, user_id: i64, named: Option<&str>) -> Result<u64> {
        let mut conn = self.pool.acquire().await.map_err(database_error)?;
        revoke_tokens(&mut conn, user_id, named).await
    }
    async fn set_user_disabled(&self, user_id: i64, disabled_at: Option<i64>) -> Result<bool> {
        transaction!(self.pool, |conn| set_user_disabled(
            conn,
            user_id,
            disabled_at
        )
        .await)
    }
    async fn set_password(&self, user_id: i64, password_hash: &str) -> Result<bool> {
        let done = sqlx::query("UPDATE users SET password_hash = $2 WHERE id = $1")
            .bind(user_id)
            .bind(password_hash)
            .execute(&self.pool)
            .await
            .map_err(database_error)?;
        Ok(done.rows_affected() > 0)
    }
    async fn delete_token(&self, token_hash: &str) -> Result<()> {
        sqlx::query("DELETE FROM api_tokens WHERE token_hash = $1")
            .bind(token_hash)
            .execute(&self.pool)
            .await
            .map_err(database_error)?;
        Ok(())
    }
}

pub async fn create_user(conn: &mut PgConnection, user: NewUser) -> Result<User> {
    let row = sqlx::query(
        "INSERT INTO users (name, password_hash, is_admin, created_at) VALUES ($1, $2, $3, $4) RETURNING *",
    )
    .bind(&user.name)
    .bind(&user.password_hash)
    .bind(user.is_admin)
    .bind(user.created_at)
    .fetch_one(&mut *conn)
    .await
    .map_err(|e| match database_error(e) {
        StoreError::Conflict(_) => StoreError::Conflict(format!("a user named `{}` already exists", user.name)),
        other => other,
    })?;
    user_from(&row)
}

pub async fn user_where<T>(pool: &PgPool, sql: &'static str, value: T) -> Result<Option<User>>
where
    T: 'static + Send + sqlx::Encode<'static, Db> + sqlx::Type<Db>,
{
    let row = sqlx::query(sql)
        .bind(value)
        .fetch_optional(pool)
        .await
        .map_err(database_error)?;
    row.as_ref().map(user_from).transpose()
}

pub async fn list_users(pool: &PgPool) -> Result<Vec<User>> {
    let rows = sqlx::query("SELECT * FROM users ORDER BY id")
        .fetch_all(pool)
        .await
        .map_err(database_error)?;
    rows.iter().map(user_from).collect()
}

pub async fn create_token(pool: &PgPool, token: &NewToken) -> Result<i64> {
    let row = sqlx::query("INSERT INTO api_tokens (user_id, name, token_hash, created_at, expires_at) VALUES ($1, $2, $3, $4, $5) RETURNING id")
        .bind(token.user_id)
        .bind(&token.name)
        .bind(&token.hash)
        .bind(token.created_at)
        .bind(token.expires_at)
        .fetch_one(pool)
        .await
        .map_err(database_error)?;
    get(&row, "id")
}

pub async fn user_by_token_hash(
    pool: &PgPool,
    hash: &str,
    now: i64,
) -> Result<Option<(User, Token)>> {
    let sql = format!(
        "SELECT u.*, {TOKEN_COLUMNS} FROM api_tokens t JOIN users u ON u.id = t.user_id
         WHERE t.token_hash = $1 AND (t.expires_at IS NULL OR t.expires_at > $2)
           AND u.disabled_at IS NULL"
    );
    let row = sqlx::query(&sql)
        .bind(hash)
        .bind(now)
        .fetch_optional(pool)
        .await
        .map_err(database_error)?;
    row.map(|row| Ok((user_from(&row)?, token_from(&row)?)))
        .transpose()
}

pub async fn tokens(pool: &PgPool, user_id: i64) -> Result<Vec<Token>> {
    let sql =
        format!("SELECT {TOKEN_COLUMNS} FROM api_tokens t WHERE t.user_id = $1 ORDER BY t.id");
    let rows = sqlx::query(&sql)
        .bind(user_id)
        .fetch_all(pool)
        .await
        .map_err(database_error)?;
    rows.iter().map(token_from).collect()
}

pub async fn revoke_tokens(
    conn: &mut PgConnection,
    user_id: i64,
    named: Option<&str>,
) -> Result<u64> {
    let done = sqlx::query(
        "DELETE FROM api_tokens WHERE user_id = $1 AND ($2::TEXT IS NULL OR name = $2)",
    )
    .bind(user_id)
    .bind(named)
    .execute(&mut *conn)
    .await
    .map_err(database_error)?;
    Ok(done.rows_affected())
}

pub async fn set_user_disabled(
    conn: &mut PgConnection,
    user_id: i64,
    disabled_at: Option<i64>,
) -> Result<bool> {
    let done = sqlx::query("UPDATE users SET disabled_at = $2 WHERE id = $1")
        .bind(user_id)
        .bind(disabled_at)
        .execute(&mut *conn)
        .await
        .map_err(database_error)?;
    if done.rows_affected() > 0 && disabled_at.is_some() {
        revoke_tokens(conn, user_id, None).await?;
    }
    Ok(done.rows_affected() > 0)
}

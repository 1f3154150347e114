//! Accounts: argon2id passwords, API tokens stored only as hashes.

use argon2::Argon2;
use argon2::password_hash::{
    PasswordHash, PasswordHasher, PasswordVerifier, SaltString, rand_core::OsRng,
};
use quorum_store::{NewUser, Store, User};
use rand::RngCore;
use sha2::{Digest, Sha256};

use crate::{App, AppError, Caller};

pub fn hash_password(password: &str) -> Result<String, AppError> {
    let salt = SaltString::generate(&mut OsRng);
    Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| AppError::Internal(e.to_string().into()))
}

pub fn verify_password(password: &str, hash: &str) -> bool {
    PasswordHash::new(hash).is_ok_and(|parsed| {
        Argon2::default()
            .verify_password(password.as_bytes(), &parsed)
            .is_ok()
    })
}

/// A new random API token (shown once) and the hash that is stored.
pub fn new_token() -> (String, String) {
    let mut bytes = [0u8; 32];
    rand::thread_rng().fill_bytes(&mut bytes);
    let token = format!("qrm_{}", hex(&bytes));
    let hash = token_hash(&token);
    (token, hash)
}

pub fn token_hash(token: &str) -> String {
    hex(&Sha256::digest(token.as_bytes()))
}

/// The CSRF token that goes with a web session: derived from the session's secret, so it
/// needs no storage, and unknowable to a page on another origin.
pub fn csrf_token(session: &str) -> String {
    hex(&Sha256::digest(format!("quorum-csrf:{session}").as_bytes()))
}

/// Compares two secrets in time that does not depend on where they differ.
pub fn same_secret(a: &str, b: &str) -> bool {
    a.len() == b.len() && a.bytes().zip(b.bytes()).fold(0u8, |d, (x, y)| d | (x ^ y)) == 0
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// A random password for the first administrator.
pub fn new_password() -> String {
    let mut bytes = [0u8; 12];
    rand::thread_rng().fill_bytes(&mut bytes);
    hex(&bytes)
}

fn valid_user_name(name: &str) -> bool {
    (1..=64).contains(&name.len())
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "._-@".contains(c))
}

impl<S: Store> App<S> {
    pub async fn authenticate_token(&self, token: &str) -> Result<Caller, AppError> {
        let hash = token_hash(token);
        let now = self.now();
        if let Some(user) = self.caches().tokens.get(&hash, now) {
            return Ok(Caller { user });
        }
        let user = self
            .store()
            .user_by_token_hash(&hash)
            .await?
            .ok_or(AppError::Unauthenticated)?;
        self.caches().tokens.put(hash, user.clone(), now);
        Ok(Caller { user })
    }

    pub async fn authenticate_password(
        &self,
        name: &str,
        password: &str,
    ) -> Result<Caller, AppError> {
        let user = self.store().user_by_name(name).await?;
        match user {
            Some(user) if verify_password(password, &user.password_hash) => Ok(Caller { user }),
            _ => Err(AppError::Unauthenticated),
        }
    }

    /// Creates a user; only administrators may.
    pub async fn create_user(
        &self,
        caller: &Caller,
        name: &str,
        password: &str,
        is_admin: bool,
    ) -> Result<User, AppError> {
        if !caller.user.is_admin {
            return Err(AppError::Forbidden(
                "only administrators create users".into(),
            ));
        }
        self.create_user_unchecked(name, password, is_admin).await
    }

    /// Creates a user without a caller (the CLI's `admin` commands and the first start).
    pub async fn create_user_unchecked(
        &self,
        name: &str,
        password: &str,
        is_admin: bool,
    ) -> Result<User, AppError> {
        if !valid_user_name(name) {
            return Err(AppError::invalid(
                "user names are 1 to 64 letters, digits or . _ - @",
            ));
        }
        if password.chars().count() < 8 {
            return Err(AppError::invalid("passwords have at least 8 characters"));
        }
        let password_hash = hash_password(password)?;
        let user = NewUser {
            name: name.to_string(),
            password_hash,
            is_admin,
            created_at: self.now(),
        };
        Ok(self.store().create_user(user).await?)
    }

    /// Issues a token for user `user_id`: administrators for anyone, others for themselves.
    pub async fn create_token(
        &self,
        caller: &Caller,
        user_id: i64,
        name: &str,
    ) -> Result<String, AppError> {
        if !caller.user.is_admin && caller.user.id != user_id {
            return Err(AppError::Forbidden(
                "only administrators issue tokens for other users".into(),
            ));
        }
        if name.is_empty() || name.len() > 100 {
            return Err(AppError::invalid("token names are 1 to 100 characters"));
        }
        let user = self
            .store()
            .user_by_id(user_id)
            .await?
            .ok_or(AppError::NotFound("user"))?;
        self.create_token_for(&user, name).await
    }

    /// Issues a token for `user`; returns the plaintext, which is never stored.
    pub async fn create_token_for(&self, user: &User, name: &str) -> Result<String, AppError> {
        let (token, hash) = new_token();
        self.store()
            .create_token(user.id, name, &hash, self.now())
            .await?;
        Ok(token)
    }

    /// Signs a person in with their password; returns them and a new session secret (an API
    /// token named `web session`, stored hashed like any other).
    pub async fn sign_in(&self, name: &str, password: &str) -> Result<(Caller, String), AppError> {
        let caller = self.authenticate_password(name, password).await?;
        let session = self.create_token_for(&caller.user, "web session").await?;
        Ok((caller, session))
    }

    /// Ends a web session: the secret stops working here at once, on other servers within
    /// the authorisation cache's lifetime.
    pub async fn sign_out(&self, session: &str) -> Result<(), AppError> {
        let hash = token_hash(session);
        self.store().delete_token(&hash).await?;
        self.caches().tokens.forget(&hash);
        Ok(())
    }

    /// The first start: when there are no users, creates the administrator `admin`.
    /// Returns the password when it was generated.
    pub async fn bootstrap_admin(
        &self,
        password: Option<String>,
    ) -> Result<Option<(User, String)>, AppError> {
        if !self.store().list_users().await?.is_empty() {
            return Ok(None);
        }
        let password = password.unwrap_or_else(new_password);
        match self.create_user_unchecked("admin", &password, true).await {
            Ok(user) => Ok(Some((user, password))),
            // Another server sharing the database created it first.
            Err(AppError::Conflict(_)) => Ok(None),
            Err(e) => Err(e),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_and_tokens() {
        let hash = hash_password("correct horse").unwrap();
        assert!(hash.starts_with("$argon2id$"));
        assert!(verify_password("correct horse", &hash));
        assert!(!verify_password("wrong horse", &hash));
        let (token, stored) = new_token();
        assert!(token.starts_with("qrm_") && token.len() == 68);
        assert_eq!(token_hash(&token), stored);
        assert_ne!(stored, token);
    }
}

//! Accounts: argon2id passwords, API tokens stored only as hashes.

use argon2::Argon2;
use argon2::password_hash::{
    PasswordHash, PasswordHasher, PasswordVerifier, SaltString, rand_core::OsRng,
};
use std::collections::HashMap;
use std::net::IpAddr;

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

/// The hash checked when a sign-in names nobody, so an unknown name costs the same work (and
/// time) as a known one and answers reveal nothing about which names exist.
fn decoy_hash() -> &'static str {
    static DECOY: std::sync::LazyLock<String> =
        std::sync::LazyLock::new(|| hash_password(&new_password()).unwrap_or_default());
    &DECOY
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
        let hash = user
            .as_ref()
            .map_or_else(|| decoy_hash().to_string(), |u| u.password_hash.clone());
        let password = password.to_string();
        let matches = self
            .hashing(move || verify_password(&password, &hash))
            .await?;
        match user {
            Some(user) if matches => Ok(Caller { user }),
            _ => Err(AppError::Unauthenticated),
        }
    }

    /// Runs password hashing (deliberately slow: tens of milliseconds of CPU) on the blocking
    /// pool, a few at a time, so a burst of sign-ins can neither starve the request workers
    /// nor take every core.
    pub(crate) async fn hashing<T: Send + 'static>(
        &self,
        work: impl FnOnce() -> T + Send + 'static,
    ) -> Result<T, AppError> {
        let permit = tokio::time::timeout(
            std::time::Duration::from_secs(10),
            self.caches().hashing.acquire(),
        )
        .await
        .map_err(|_| AppError::Unavailable)?
        .map_err(|_| AppError::Unavailable)?;
        let result = tokio::task::spawn_blocking(work)
            .await
            .map_err(|e| AppError::Internal(Box::new(e)))?;
        drop(permit);
        Ok(result)
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
        let password = password.to_string();
        let password_hash = self.hashing(move || hash_password(&password)).await??;
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

/// How failed sign-ins are limited, in this process. Two counts are kept:
///
/// - per (name, client address): after [`FREE_FAILURES`] failures, each further failure locks
///   that pair for twice as long as the one before (1 minute, 2, 4, … up to an hour). Someone
///   guessing a name's password from one address is slowed down without bound, while the
///   name's owner, signing in from their own address, is never locked out by them;
/// - per client address: at most [`ADDRESS_BUDGET`] failures, whatever the names, in
///   [`ADDRESS_WINDOW_MS`], so one address cannot walk through many names.
///
/// A success clears its (name, address) count. Names are compared trimmed and lower-cased,
/// as sign-in reads them.
#[derive(Debug, Default)]
pub struct SignInLimiter {
    pairs: std::sync::Mutex<HashMap<(String, IpAddr), Backoff>>,
    addresses: std::sync::Mutex<HashMap<IpAddr, Budget>>,
}

/// Failures a (name, address) pair may make before the back-off starts.
pub const FREE_FAILURES: u32 = 5;
/// Failures one address may make, over every name, within [`ADDRESS_WINDOW_MS`].
pub const ADDRESS_BUDGET: u32 = 100;
pub const ADDRESS_WINDOW_MS: i64 = 15 * 60 * 1000;
const FIRST_LOCK_MS: i64 = 60 * 1000;
const LONGEST_LOCK_MS: i64 = 60 * 60 * 1000;
/// Entries kept before the expired ones are swept.
const MAX_ENTRIES: usize = 100_000;

#[derive(Debug, Clone, Copy)]
struct Backoff {
    failures: u32,
    locked_until: i64,
    last: i64,
}

#[derive(Debug, Clone, Copy)]
struct Budget {
    failures: u32,
    since: i64,
}

/// A user name as sign-in compares it.
pub fn normalise_name(name: &str) -> String {
    name.trim().to_lowercase()
}

impl SignInLimiter {
    /// `Some(milliseconds)` to wait when this name may not be tried from this address now.
    pub fn blocked(&self, name: &str, address: IpAddr, now: i64) -> Option<i64> {
        let pair = self
            .pairs
            .lock()
            .ok()?
            .get(&(normalise_name(name), address))
            .map_or(0, |b| b.locked_until - now);
        let budget = self.addresses.lock().ok()?.get(&address).map_or(0, |b| {
            if b.failures >= ADDRESS_BUDGET {
                b.since + ADDRESS_WINDOW_MS - now
            } else {
                0
            }
        });
        let wait = pair.max(budget);
        (wait > 0).then_some(wait)
    }

    pub fn failed(&self, name: &str, address: IpAddr, now: i64) {
        if let Ok(mut pairs) = self.pairs.lock() {
            if pairs.len() >= MAX_ENTRIES {
                pairs.retain(|_, b| b.locked_until > now || now - b.last < LONGEST_LOCK_MS);
            }
            let entry = pairs
                .entry((normalise_name(name), address))
                .or_insert(Backoff {
                    failures: 0,
                    locked_until: 0,
                    last: now,
                });
            // A quiet hour forgives the past.
            if now - entry.last >= LONGEST_LOCK_MS && entry.locked_until <= now {
                entry.failures = 0;
            }
            entry.failures += 1;
            entry.last = now;
            if entry.failures >= FREE_FAILURES {
                let doublings = (entry.failures - FREE_FAILURES).min(10);
                let lock = (FIRST_LOCK_MS << doublings).min(LONGEST_LOCK_MS);
                entry.locked_until = now + lock;
            }
        }
        if let Ok(mut addresses) = self.addresses.lock() {
            if addresses.len() >= MAX_ENTRIES {
                addresses.retain(|_, b| now - b.since < ADDRESS_WINDOW_MS);
            }
            let entry = addresses.entry(address).or_insert(Budget {
                failures: 0,
                since: now,
            });
            if now - entry.since >= ADDRESS_WINDOW_MS {
                *entry = Budget {
                    failures: 0,
                    since: now,
                };
            }
            entry.failures += 1;
        }
    }

    pub fn succeeded(&self, name: &str, address: IpAddr) {
        if let Ok(mut pairs) = self.pairs.lock() {
            pairs.remove(&(normalise_name(name), address));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sign_ins_back_off_per_name_and_address_within_a_budget_per_address() {
        let limiter = SignInLimiter::default();
        let (here, there) = (IpAddr::from([10, 0, 0, 1]), IpAddr::from([10, 0, 0, 2]));
        for _ in 0..FREE_FAILURES - 1 {
            assert!(limiter.blocked("Ann", here, 0).is_none());
            limiter.failed("ann", here, 0);
        }
        limiter.failed(" ANN ", here, 0);
        // Padding and case make no new name; another address is not locked.
        assert_eq!(limiter.blocked("  ann", here, 0), Some(FIRST_LOCK_MS));
        assert!(limiter.blocked("ann", there, 0).is_none());
        // Each failure after the lock doubles it.
        limiter.failed("ann", here, FIRST_LOCK_MS);
        assert_eq!(
            limiter.blocked("ann", here, FIRST_LOCK_MS),
            Some(2 * FIRST_LOCK_MS)
        );
        limiter.succeeded("ann", here);
        assert!(limiter.blocked("ann", here, FIRST_LOCK_MS).is_none());
        // One address walking through names runs out of its budget for every name.
        for i in 0..ADDRESS_BUDGET {
            limiter.failed(&format!("user{i}"), there, 1000);
        }
        assert!(limiter.blocked("someone-else", there, 1000).is_some());
        assert!(
            limiter
                .blocked("someone-else", there, 1000 + ADDRESS_WINDOW_MS)
                .is_none()
        );
        assert!(limiter.blocked("someone-else", here, 1000).is_none());
    }

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

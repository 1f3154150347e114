//! Accounts: argon2id passwords, API tokens stored only as hashes.

use argon2::Argon2;
use argon2::password_hash::{
    PasswordHash, PasswordHasher, PasswordVerifier, SaltString, rand_core::OsRng,
};
use std::collections::HashMap;
use std::net::IpAddr;

use quorum_store::{NewToken, NewUser, Store, Token, User};
use rand::RngCore;
use serde::Serialize;
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

/// The name of the tokens that are web sessions.
pub const SESSION_NAME: &str = "web session";
/// A web session ends after this long unused (each use moves its end)…
pub const SESSION_IDLE_MS: i64 = 7 * 24 * 3600 * 1000;
/// …and this long after sign-in, however much it is used.
pub const SESSION_MAX_MS: i64 = 30 * 24 * 3600 * 1000;
/// A token's last use (and a session's end) is written at most this often.
const TOUCH_MS: i64 = 3600 * 1000;

/// A token or session as its owner and administrators see it (never its secret).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TokenView {
    #[serde(flatten)]
    pub token: Token,
    /// A web session (signed in with a password), not an API token.
    pub session: bool,
}

fn check_password(password: &str) -> Result<(), AppError> {
    let length = password.chars().count();
    if !(8..=1000).contains(&length) {
        return Err(AppError::Invalid {
            message: "passwords have 8 to 1000 characters".into(),
            details: serde_json::json!({"field": "password"}),
        });
    }
    Ok(())
}

fn valid_user_name(name: &str) -> bool {
    (1..=64).contains(&name.len())
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "._-@".contains(c))
}

impl<S: Store> App<S> {
    /// The caller a token or session secret belongs to, while it is live and its owner is not
    /// disabled. A session's end moves with use (at most hourly, so use costs no write).
    pub async fn authenticate_token(&self, token: &str) -> Result<Caller, AppError> {
        let hash = token_hash(token);
        let now = self.now();
        if let Some((user, expires_at)) = self.caches().tokens.get(&hash, now)
            && expires_at.is_none_or(|at| now < at)
        {
            return Ok(Caller { user });
        }
        let (user, token) = self
            .store()
            .user_by_token_hash(&hash, now)
            .await?
            .ok_or(AppError::Unauthenticated)?;
        let mut expires_at = token.expires_at;
        if token.last_used_at.is_none_or(|at| now - at >= TOUCH_MS) {
            if token.name == SESSION_NAME {
                expires_at = Some((now + SESSION_IDLE_MS).min(token.created_at + SESSION_MAX_MS));
            }
            self.store().touch_token(token.id, now, expires_at).await?;
        }
        self.caches()
            .tokens
            .put(hash, (user.clone(), expires_at), now);
        Ok(Caller { user })
    }

    /// Forgets what this server cached of a user's tokens, so a revocation here applies at
    /// once (other servers drop theirs within [`crate::CACHE_MS`]).
    fn forget_tokens_of(&self, user_id: i64) {
        self.caches().tokens.forget_where(|(u, _)| u.id == user_id);
    }

    /// Administrators act on anyone; others on themselves only.
    fn require_self_or_admin(&self, caller: &Caller, user_id: i64) -> Result<(), AppError> {
        if caller.user.is_admin || caller.user.id == user_id {
            Ok(())
        } else {
            // Another user's existence is not revealed.
            Err(AppError::NotFound("user"))
        }
    }

    /// Every account (administrators).
    pub async fn users(&self, caller: &Caller) -> Result<Vec<User>, AppError> {
        if !caller.user.is_admin {
            return Err(AppError::Forbidden("only administrators list users".into()));
        }
        Ok(self.store().list_users().await?)
    }

    /// A user's tokens and sessions (theirs, or an administrator's view).
    pub async fn tokens(&self, caller: &Caller, user_id: i64) -> Result<Vec<TokenView>, AppError> {
        self.require_self_or_admin(caller, user_id)?;
        Ok(self
            .store()
            .tokens(user_id)
            .await?
            .into_iter()
            .map(|token| TokenView {
                session: token.name == SESSION_NAME,
                token,
            })
            .collect())
    }

    /// Revokes one token or session of a user (theirs, or any for administrators).
    pub async fn revoke_token(
        &self,
        caller: &Caller,
        user_id: i64,
        token_id: i64,
    ) -> Result<(), AppError> {
        self.require_self_or_admin(caller, user_id)?;
        if !self.store().revoke_token(user_id, token_id).await? {
            return Err(AppError::NotFound("token"));
        }
        self.forget_tokens_of(user_id);
        Ok(())
    }

    /// Changes the caller's own password, given the current one, and ends every web session
    /// of theirs (API tokens stay: they are separate credentials, listed and revocable).
    pub async fn change_password(
        &self,
        caller: &Caller,
        current: &str,
        new: &str,
    ) -> Result<(), AppError> {
        if self
            .authenticate_password(&caller.user.name, current)
            .await
            .is_err()
        {
            return Err(AppError::Invalid {
                message: "the current password is not right".into(),
                details: serde_json::json!({"field": "current_password"}),
            });
        }
        self.set_password_unchecked(caller.user.id, new).await
    }

    /// Sets a user's password (the caller is trusted: the CLI, or after checks) and ends their
    /// web sessions.
    pub async fn set_password_unchecked(
        &self,
        user_id: i64,
        password: &str,
    ) -> Result<(), AppError> {
        check_password(password)?;
        let password = password.to_string();
        let hash = self.hashing(move || hash_password(&password)).await??;
        if !self.store().set_password(user_id, &hash).await? {
            return Err(AppError::NotFound("user"));
        }
        self.store()
            .revoke_tokens(user_id, Some(SESSION_NAME))
            .await?;
        self.forget_tokens_of(user_id);
        Ok(())
    }

    /// Disables an account (it can no longer sign in, and every token and session of it ends:
    /// here at once, on other servers within the cache time) or enables it again.
    /// Administrators only, and never their own account.
    pub async fn set_disabled(
        &self,
        caller: &Caller,
        user_id: i64,
        disabled: bool,
    ) -> Result<User, AppError> {
        if !caller.user.is_admin {
            return Err(AppError::Forbidden(
                "only administrators disable and enable accounts".into(),
            ));
        }
        if caller.user.id == user_id {
            return Err(AppError::invalid(
                "administrators cannot disable themselves",
            ));
        }
        self.set_disabled_unchecked(user_id, disabled).await
    }

    /// [`App::set_disabled`] without a caller (the CLI's `admin` commands).
    pub async fn set_disabled_unchecked(
        &self,
        user_id: i64,
        disabled: bool,
    ) -> Result<User, AppError> {
        let at = disabled.then(|| self.now());
        if !self.store().set_user_disabled(user_id, at).await? {
            return Err(AppError::NotFound("user"));
        }
        self.forget_tokens_of(user_id);
        self.store()
            .user_by_id(user_id)
            .await?
            .ok_or(AppError::NotFound("user"))
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
            Some(user) if matches && user.disabled_at.is_none() => Ok(Caller { user }),
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
        check_password(password)?;
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

    /// Issues a token for user `user_id`: administrators for anyone, others for themselves;
    /// it stops working at `expires_at` (Unix ms) when one is given.
    pub async fn create_token(
        &self,
        caller: &Caller,
        user_id: i64,
        name: &str,
        expires_at: Option<i64>,
    ) -> Result<String, AppError> {
        if !caller.user.is_admin && caller.user.id != user_id {
            return Err(AppError::Forbidden(
                "only administrators issue tokens for other users".into(),
            ));
        }
        if name.is_empty() || name.len() > 100 || name == SESSION_NAME {
            return Err(AppError::Invalid {
                message: format!("token names are 1 to 100 characters, and not `{SESSION_NAME}`"),
                details: serde_json::json!({"field": "name"}),
            });
        }
        if expires_at.is_some_and(|at| at <= self.now()) {
            return Err(AppError::Invalid {
                message: "expires_at must be in the future (Unix milliseconds)".into(),
                details: serde_json::json!({"field": "expires_at"}),
            });
        }
        let user = self
            .store()
            .user_by_id(user_id)
            .await?
            .ok_or(AppError::NotFound("user"))?;
        self.issue_token(&user, name, expires_at).await
    }

    /// Issues a token for `user` that does not expire; returns the plaintext, which is never
    /// stored.
    pub async fn create_token_for(&self, user: &User, name: &str) -> Result<String, AppError> {
        self.issue_token(user, name, None).await
    }

    async fn issue_token(
        &self,
        user: &User,
        name: &str,
        expires_at: Option<i64>,
    ) -> Result<String, AppError> {
        let (token, hash) = new_token();
        self.store()
            .create_token(NewToken {
                user_id: user.id,
                name: name.to_string(),
                hash,
                created_at: self.now(),
                expires_at,
            })
            .await?;
        Ok(token)
    }

    /// Signs a person in with their password; returns them and a new session secret (an API
    /// token named `web session`, stored hashed like any other).
    pub async fn sign_in(&self, name: &str, password: &str) -> Result<(Caller, String), AppError> {
        let caller = self.authenticate_password(name, password).await?;
        let session = self.start_session(&caller.user).await?;
        Ok((caller, session))
    }

    /// A new web session for `user` (after a sign-in, or a password change that ended the
    /// others).
    pub async fn start_session(&self, user: &User) -> Result<String, AppError> {
        let expires_at = Some(self.now() + SESSION_IDLE_MS);
        self.issue_token(user, SESSION_NAME, expires_at).await
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

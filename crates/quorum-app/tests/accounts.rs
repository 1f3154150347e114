//! Account lifecycle against a real SQLite file with a clock the test moves: sliding web
//! sessions with a hard end, token expiry, and revocations seen by a second server (a second
//! `App` on the same store) within the authorisation cache's time.

#![expect(clippy::unwrap_used, reason = "tests fail loudly")]

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};

use quorum_app::accounts::{SESSION_IDLE_MS, SESSION_MAX_MS};
use quorum_app::{App, AppError, CACHE_MS, Caller, Clock};
use quorum_store_sqlite::SqliteStore;

#[derive(Debug, Default)]
struct ManualClock(AtomicI64);

impl Clock for ManualClock {
    fn now(&self) -> i64 {
        self.0.load(Ordering::SeqCst)
    }
}

impl ManualClock {
    fn advance(&self, ms: i64) {
        self.0.fetch_add(ms, Ordering::SeqCst);
    }
}

const HOUR: i64 = 3600 * 1000;
const DAY: i64 = 24 * HOUR;

async fn two_servers() -> (
    App<SqliteStore>,
    App<SqliteStore>,
    Arc<ManualClock>,
    tempfile::TempDir,
) {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(
        SqliteStore::open(dir.path().join("q.sqlite3").to_str().unwrap())
            .await
            .unwrap(),
    );
    let clock = Arc::new(ManualClock(AtomicI64::new(1_700_000_000_000)));
    let one = App::new(Arc::clone(&store), clock.clone());
    let other = App::new(store, clock.clone());
    (one, other, clock, dir)
}

fn refused(result: Result<Caller, AppError>) -> bool {
    matches!(result, Err(AppError::Unauthenticated))
}

#[tokio::test]
async fn a_web_session_slides_with_use_and_ends_when_idle_or_too_old() {
    let (app, _, clock, _dir) = two_servers().await;
    app.create_user_unchecked("ann", "password123", false)
        .await
        .unwrap();
    let (_, session) = app.sign_in("ann", "password123").await.unwrap();
    // Used every six days, it lives on…
    for _ in 0..4 {
        clock.advance(6 * DAY);
        assert!(app.authenticate_token(&session).await.is_ok());
    }
    // …but never past its hard end after sign-in.
    clock.advance(SESSION_MAX_MS - 24 * DAY);
    assert!(refused(app.authenticate_token(&session).await));
    // Left unused past the idle time, it ends.
    let (_, idle) = app.sign_in("ann", "password123").await.unwrap();
    clock.advance(SESSION_IDLE_MS + 1);
    assert!(refused(app.authenticate_token(&idle).await));
}

#[tokio::test]
async fn revocations_reach_every_server_within_the_cache_time() {
    let (one, other, clock, _dir) = two_servers().await;
    let admin = one
        .create_user_unchecked("root", "password123", true)
        .await
        .unwrap();
    let admin = Caller { user: admin };
    let ann = one
        .create_user_unchecked("ann", "password123", false)
        .await
        .unwrap();
    let token = one
        .create_token(&admin, ann.id, "pipeline", Some(clock.now() + DAY))
        .await
        .unwrap();
    assert!(
        other.authenticate_token(&token).await.is_ok(),
        "cached by the other server"
    );

    // A token revoked through one server: refused there at once, on the other within the
    // cache time and not before it runs out.
    let listed = one.tokens(&admin, ann.id).await.unwrap();
    let id = listed
        .iter()
        .find(|t| t.token.name == "pipeline")
        .unwrap()
        .token
        .id;
    one.revoke_token(&admin, ann.id, id).await.unwrap();
    assert!(refused(one.authenticate_token(&token).await));
    clock.advance(CACHE_MS - 1);
    assert!(
        other.authenticate_token(&token).await.is_ok(),
        "still cached"
    );
    clock.advance(1);
    assert!(refused(other.authenticate_token(&token).await));

    // Disabling: every token and session ends, the same way.
    let (_, session) = one.sign_in("ann", "password123").await.unwrap();
    let api = one.create_token(&admin, ann.id, "api", None).await.unwrap();
    assert!(other.authenticate_token(&session).await.is_ok());
    assert!(other.authenticate_token(&api).await.is_ok());
    one.set_disabled(&admin, ann.id, true).await.unwrap();
    assert!(refused(one.authenticate_token(&api).await));
    assert!(refused(
        one.sign_in("ann", "password123").await.map(|(c, _)| c)
    ));
    clock.advance(CACHE_MS);
    assert!(refused(other.authenticate_token(&session).await));
    assert!(refused(other.authenticate_token(&api).await));
    // Enabled again, the old secrets stay dead; signing in works.
    one.set_disabled(&admin, ann.id, false).await.unwrap();
    assert!(refused(one.authenticate_token(&api).await));
    assert!(one.sign_in("ann", "password123").await.is_ok());

    // A token that expires is refused from then on, even while cached.
    let short = one
        .create_token(&admin, ann.id, "short", Some(clock.now() + 1000))
        .await
        .unwrap();
    assert!(one.authenticate_token(&short).await.is_ok());
    clock.advance(1000);
    assert!(refused(one.authenticate_token(&short).await));
}

#[tokio::test]
async fn a_password_change_needs_the_old_one_and_ends_sessions_but_not_tokens() {
    let (app, _, _, _dir) = two_servers().await;
    app.create_user_unchecked("ann", "password123", false)
        .await
        .unwrap();
    let (caller, session) = app.sign_in("ann", "password123").await.unwrap();
    let token = app
        .create_token(&caller, caller.user.id, "api", None)
        .await
        .unwrap();
    let wrong = app
        .change_password(&caller, "not-it-at-all", "new-password-1")
        .await;
    assert!(matches!(wrong, Err(AppError::Invalid { .. })), "{wrong:?}");
    let short = app.change_password(&caller, "password123", "short").await;
    assert!(matches!(short, Err(AppError::Invalid { .. })), "{short:?}");
    app.change_password(&caller, "password123", "new-password-1")
        .await
        .unwrap();
    assert!(refused(app.authenticate_token(&session).await));
    assert!(app.authenticate_token(&token).await.is_ok());
    assert!(app.sign_in("ann", "password123").await.is_err());
    assert!(app.sign_in("ann", "new-password-1").await.is_ok());
    // Nobody but the user (or an administrator) sees or revokes their tokens.
    let bob = app
        .create_user_unchecked("bob", "password123", false)
        .await
        .unwrap();
    let bob = Caller { user: bob };
    assert!(matches!(
        app.tokens(&bob, caller.user.id).await,
        Err(AppError::NotFound(_))
    ));
    assert!(matches!(
        app.set_disabled(&bob, caller.user.id, true).await,
        Err(AppError::Forbidden(_))
    ));
}

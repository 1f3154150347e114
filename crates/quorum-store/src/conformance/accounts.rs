//! Conformance: Accounts.

use super::*;

pub async fn users_and_tokens<S: Store>(store: S) {
    let id = user(&store, "ada").await;
    let duplicate = store
        .create_user(NewUser {
            name: "ada".into(),
            password_hash: "y".into(),
            is_admin: false,
            created_at: 0,
        })
        .await;
    assert!(
        matches!(duplicate, Err(StoreError::Conflict(_))),
        "{duplicate:?}"
    );
    assert_eq!(store.user_by_name("ada").await.unwrap().unwrap().id, id);
    assert!(store.user_by_name("bob").await.unwrap().is_none());
    let token = |name: &str, hash: &str, expires_at: Option<i64>| NewToken {
        user_id: id,
        name: name.into(),
        hash: hash.into(),
        created_at: 5,
        expires_at,
    };
    let cli = store
        .create_token(token("cli", "hash-1", None))
        .await
        .unwrap();
    let (owner, found) = store
        .user_by_token_hash("hash-1", 6)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        (owner.name.as_str(), found.id, found.expires_at),
        ("ada", cli, None)
    );
    assert!(
        store
            .user_by_token_hash("hash-2", 6)
            .await
            .unwrap()
            .is_none()
    );
    assert_eq!(store.list_users().await.unwrap().len(), 1);
    store.delete_token("hash-1").await.unwrap();
    assert!(
        store
            .user_by_token_hash("hash-1", 6)
            .await
            .unwrap()
            .is_none(),
        "revoked"
    );
    store.delete_token("hash-1").await.unwrap();

    // Expiry, sliding by touch.
    let session = store
        .create_token(token("web session", "hash-3", Some(100)))
        .await
        .unwrap();
    assert!(
        store
            .user_by_token_hash("hash-3", 99)
            .await
            .unwrap()
            .is_some()
    );
    assert!(
        store
            .user_by_token_hash("hash-3", 100)
            .await
            .unwrap()
            .is_none(),
        "expired"
    );
    store.touch_token(session, 99, Some(200)).await.unwrap();
    let (_, touched) = store
        .user_by_token_hash("hash-3", 150)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        (touched.last_used_at, touched.expires_at),
        (Some(99), Some(200))
    );

    // Listing and revoking one token, only the owner's.
    let api = store
        .create_token(token("api", "hash-4", None))
        .await
        .unwrap();
    let listed: Vec<(i64, String)> = store
        .tokens(id)
        .await
        .unwrap()
        .into_iter()
        .map(|t| (t.id, t.name))
        .collect();
    assert_eq!(
        listed,
        vec![(session, "web session".into()), (api, "api".into())]
    );
    let other = user(&store, "eve").await;
    assert!(!store.revoke_token(other, api).await.unwrap());
    assert!(store.revoke_token(id, api).await.unwrap());
    assert!(
        store
            .user_by_token_hash("hash-4", 6)
            .await
            .unwrap()
            .is_none()
    );
    // Revoking by name leaves the others.
    store
        .create_token(token("api", "hash-5", None))
        .await
        .unwrap();
    assert_eq!(
        store.revoke_tokens(id, Some("web session")).await.unwrap(),
        1
    );
    assert!(
        store
            .user_by_token_hash("hash-5", 6)
            .await
            .unwrap()
            .is_some()
    );

    // Disabling ends every token at once and keeps the account from signing in.
    store
        .create_token(token("web session", "hash-6", None))
        .await
        .unwrap();
    assert!(store.set_user_disabled(id, Some(7)).await.unwrap());
    assert_eq!(
        store
            .user_by_name("ada")
            .await
            .unwrap()
            .unwrap()
            .disabled_at,
        Some(7)
    );
    assert!(store.tokens(id).await.unwrap().is_empty());
    assert!(
        store
            .user_by_token_hash("hash-5", 8)
            .await
            .unwrap()
            .is_none()
    );
    assert!(store.set_user_disabled(id, None).await.unwrap());
    assert_eq!(
        store.user_by_id(id).await.unwrap().unwrap().disabled_at,
        None
    );
    assert!(!store.set_user_disabled(id + 1000, Some(9)).await.unwrap());
    // A token of a disabled user is refused even if it was made after the disabling.
    assert!(store.set_user_disabled(other, Some(9)).await.unwrap());
    store
        .create_token(NewToken {
            user_id: other,
            ..token("api", "hash-7", None)
        })
        .await
        .unwrap();
    assert!(
        store
            .user_by_token_hash("hash-7", 10)
            .await
            .unwrap()
            .is_none()
    );
    assert!(store.set_password(id, "new-hash").await.unwrap());
    assert_eq!(
        store.user_by_id(id).await.unwrap().unwrap().password_hash,
        "new-hash"
    );
}

//! Conformance: Standards: standard runs and instance settings.

use super::*;

/// Standard runs are found by hash; an instance setting keeps its first value.
pub async fn standard_runs_and_instance_settings<S: Store>(store: S) {
    let owner = user(&store, "owner").await;
    let (p, b) = (
        project(&store, owner, 1, LocalePolicy::Any).await,
        project(&store, owner, 1, LocalePolicy::Any).await,
    );
    let run = StandardRun {
        hash: "sha256:abc".into(),
        prompts_project_id: p,
        battles_project_id: b,
        models: vec!["m1".into(), "m2".into()],
        private: true,
        standard: json!({"spec": {"name": "s"}, "items": []}),
        created_at: 5,
    };
    store.put_standard_run(run.clone()).await.unwrap();
    assert_eq!(
        store.standard_runs("sha256:abc").await.unwrap(),
        vec![run.clone()]
    );
    assert_eq!(store.standard_run_of(b).await.unwrap(), Some(run.clone()));
    assert_eq!(store.standard_run_of(p).await.unwrap(), Some(run));
    assert_eq!(store.standard_run_of(b + 100).await.unwrap(), None);
    let later = StandardRun {
        hash: "sha256:def".into(),
        created_at: 6,
        ..store.standard_run_of(p).await.unwrap().unwrap()
    };
    store.put_standard_run(later).await.unwrap();
    let hashes: Vec<String> = store
        .all_standard_runs()
        .await
        .unwrap()
        .into_iter()
        .map(|r| r.hash)
        .collect();
    assert_eq!(hashes, vec!["sha256:def", "sha256:abc"]);
    assert!(store.standard_runs("sha256:xyz").await.unwrap().is_empty());
    let first = store.instance_setting("key", "one".into()).await.unwrap();
    assert_eq!(first, "one");
    let again = store.instance_setting("key", "two".into()).await.unwrap();
    assert_eq!(again, "one");
}

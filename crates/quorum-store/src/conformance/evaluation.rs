//! Conformance: Evaluation: models, generations and battles.

use super::*;

/// Models are registered and updated by name; a generation is replaced by a later attempt;
/// battles record which model is behind each side, and their responses come back with the
/// rater's locales; a battle import that fails writes nothing.
pub async fn models_generations_and_battles<S: Store>(store: S) {
    let owner = user(&store, "owner").await;
    let rater = user(&store, "rater").await;
    let p = project(&store, owner, 1, LocalePolicy::Any).await;
    let model = |name: &str, temperature: f64| ModelSpec {
        name: name.into(),
        base_url: Some("http://127.0.0.1:9/v1".into()),
        model_id: None,
        api_key_env: Some("KEY".into()),
        parameters: json!({"temperature": temperature}),
        created_at: 5,
    };
    store.upsert_model(model("m1", 0.0)).await.unwrap();
    store.upsert_model(model("m0", 0.0)).await.unwrap();
    store.upsert_model(model("m1", 0.7)).await.unwrap();
    let models = store.models().await.unwrap();
    assert_eq!(models.len(), 2);
    assert_eq!(models[1].parameters, json!({"temperature": 0.7}));

    store
        .import_items(p, batch![item("prompt", 0, None)], 0)
        .await
        .unwrap();
    let prompt = store
        .next_lease(next(p, owner, 1, 0))
        .await
        .unwrap()
        .unwrap()
        .1
        .id;
    let generation = |output: Option<&str>, attempts| Generation {
        project_id: p,
        item_id: prompt,
        model: "m1".into(),
        output: output.map(str::to_string),
        error: output.is_none().then(|| "HTTP 500".to_string()),
        latency_ms: 40,
        prompt_tokens: Some(3),
        completion_tokens: Some(7),
        attempts,
        created_at: 9,
    };
    store
        .put_generations(vec![generation(None, 3)])
        .await
        .unwrap();
    store
        .put_generations(vec![generation(Some("hello"), 1)])
        .await
        .unwrap();
    let generations = store.generations(p).await.unwrap();
    assert_eq!(generations, vec![generation(Some("hello"), 1)]);
    let listed = store.items(p, 0, 10).await.unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].id, prompt);
    assert!(store.items(p, prompt, 10).await.unwrap().is_empty());

    let sides = |a: &str, b: &str| BattleSides {
        model_a: a.into(),
        model_b: b.into(),
        prompt_item_id: Some(prompt),
    };
    let q = project(&store, owner, 1, LocalePolicy::Any).await;
    // A battle without an external id refuses the whole import.
    let mut unnamed = item("x", 0, None);
    unnamed.external_id = None;
    let refused = store
        .import_battles(
            q,
            batch![item("b1", 0, None), unnamed],
            vec![sides("m0", "m1"), sides("m1", "m0")],
            1,
        )
        .await;
    assert!(refused.is_err());
    assert!(
        store
            .next_lease(next(q, rater, 1, 1))
            .await
            .unwrap()
            .is_none(),
        "nothing was written"
    );

    let report = store
        .import_battles(
            q,
            batch![item("b1", 0, Some("ar-QA"))],
            vec![sides("m0", "m1")],
            1,
        )
        .await
        .unwrap();
    assert_eq!(report.created, 1);
    store
        .upsert_member(Member {
            project_id: q,
            user_id: rater,
            role: Role::Annotator,
            locales: vec!["ar-QA".into(), "en".into()],
            skills: vec![],
        })
        .await
        .unwrap();
    let (lease, _) = store
        .next_lease(next(q, rater, 1, 2))
        .await
        .unwrap()
        .unwrap();
    let mut answer = submission(lease.id, rater, 1, 3);
    answer.answers = json!({"preference": "b"});
    store.submit(answer).await.unwrap();
    let votes = store.battle_votes(q, 0, 10).await.unwrap();
    assert_eq!(votes.len(), 1);
    let vote = &votes[0];
    assert_eq!((vote.model_a.as_str(), vote.model_b.as_str()), ("m0", "m1"));
    assert_eq!(vote.answers, json!({"preference": "b"}));
    assert_eq!(
        vote.rater_locales,
        vec!["ar-QA".to_string(), "en".to_string()]
    );
    assert_eq!(vote.item_locale.as_deref(), Some("ar-QA"));
    assert_eq!(vote.user_name, "rater");
    assert!(
        store
            .battle_votes(q, vote.response_id, 10)
            .await
            .unwrap()
            .is_empty()
    );
    // Responses to ordinary items are not battle votes.
    assert!(store.battle_votes(p, 0, 10).await.unwrap().is_empty());
}

//! The orchestrator store's conformance suite (SQLite, and Postgres when
//! `TEST_DATABASE_URL` is set).

use std::path::Path;

use myloware_core::project::Catalog;
use myloware_db::{Db, conformance_tests};
use myloware_orchestrator::store;

fn catalog() -> Catalog {
    Catalog::load(&Path::new(env!("CARGO_MANIFEST_DIR")).join("../../projects")).expect("the real catalog loads")
}

async fn ingest_replaces_the_knowledge_base(db: &Db) {
    let store = store::open(db);
    let docs = catalog().knowledge_documents();
    store.replace_knowledge(&docs).await.unwrap();
    store.replace_knowledge(&docs).await.unwrap();
    assert_eq!(
        store.knowledge_count().await.unwrap(),
        docs.len() as i64,
        "re-ingesting does not duplicate"
    );
    store.replace_knowledge(&docs[..3]).await.unwrap();
    assert_eq!(store.knowledge_count().await.unwrap(), 3);
}

async fn knowledge_is_full_text_searchable_by_project_and_persona(db: &Db) {
    let store = store::open(db);
    store.replace_knowledge(&catalog().knowledge_documents()).await.unwrap();

    let hits = store
        .search_knowledge("whispered word", Some("aismr"), None, 5)
        .await
        .unwrap();
    assert!(
        !hits.is_empty(),
        "the aismr guardrail about the whispered word is found"
    );
    assert!(
        hits.iter()
            .any(|h| h.kind == "guardrail" && h.body.to_lowercase().contains("whisper")),
        "{hits:?}"
    );
    assert!(
        hits.iter().all(|h| h.project.as_deref().is_none_or(|p| p == "aismr")),
        "{hits:?}"
    );

    // Stemming: "hands" finds "hands visible" whatever the inflection.
    let hits = store.search_knowledge("hand", Some("aismr"), None, 5).await.unwrap();
    assert!(!hits.is_empty());

    let other_project = store
        .search_knowledge("whispered", Some("test_video_gen"), None, 5)
        .await
        .unwrap();
    assert!(other_project.iter().all(|h| h.project.is_none()), "{other_project:?}");

    let riley = store
        .search_knowledge("prompt clip camera", None, Some("riley"), 10)
        .await
        .unwrap();
    assert!(
        riley.iter().all(|h| h.persona.as_deref().is_none_or(|p| p == "riley")),
        "{riley:?}"
    );
    assert!(riley.iter().any(|h| h.persona.as_deref() == Some("riley")), "{riley:?}");

    // Operators of the query languages are plain words here, never syntax errors.
    for query in ["\"unbalanced", "a OR (b", "NEAR(x y)", "foo:*", "!!!", ""] {
        store.search_knowledge(query, None, None, 5).await.unwrap();
    }
}

conformance_tests!(
    ingest_replaces_the_knowledge_base,
    knowledge_is_full_text_searchable_by_project_and_persona
);

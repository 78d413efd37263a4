//! Security: refused (or ignored) webhook deliveries are anybody's bytes.
//! Each is stored bounded: its size, its SHA-256 and its first 1 KB, and
//! at most 30 headers cut to 256 characters (the old API stored every body
//! whole: five 1 MB bodies grew the SQLite file by 18 MB).

use myloware_db::Db;

use myloware_testkit::conformance_tests;
use sha2::{Digest, Sha256};

use myloware_testkit::system::start;

const TELEGRAM_SECRET: &str = "storage-test-telegram-secret";
/// Under the 1 MiB body limit, so every body reaches the handler.
const BODY_BYTES: usize = 1_000_000;

/// The database's size in bytes: SQLite's pages after a WAL checkpoint,
/// or Postgres's webhook table with its TOAST and indexes.
async fn database_bytes(db: &Db) -> i64 {
    match db {
        Db::Sqlite(pool) => {
            sqlx::query("PRAGMA wal_checkpoint(TRUNCATE)")
                .execute(pool)
                .await
                .unwrap();
            let pages: i64 = sqlx::query_scalar("PRAGMA page_count").fetch_one(pool).await.unwrap();
            let size: i64 = sqlx::query_scalar("PRAGMA page_size").fetch_one(pool).await.unwrap();
            pages * size
        }
        Db::Postgres(pool) => sqlx::query_scalar("SELECT pg_total_relation_size('webhook_deliveries')")
            .fetch_one(pool)
            .await
            .unwrap(),
    }
}

async fn megabytes_of_refused_bodies_grow_the_database_by_kilobytes(db: &Db) {
    let system = start(db, &[("TELEGRAM_WEBHOOK_SECRET", TELEGRAM_SECRET)]).await;
    let body = vec![0xFFu8; BODY_BYTES];
    let hash = hex::encode(Sha256::digest(&body));
    let before = database_bytes(db).await;
    let doors = [
        ("/v1/webhooks/kieai?runId=run_abcdefabcdef&index=0&token=00", 401),
        ("/v1/webhooks/upload-post", 200),
        ("/v1/telegram/webhook", 401),
    ];
    for (path, status) in doors {
        for _ in 0..5 {
            let mut request = system
                .http
                .post(format!("{}{path}", system.api))
                .header("content-type", "application/json")
                .header("x-webhook-timestamp", "1700000000")
                .header("x-webhook-signature", "forged")
                .header("x-telegram-bot-api-secret-token", "wrong")
                .body(body.clone());
            // Many long headers: stored at most 30, each cut.
            for i in 0..60 {
                request = request.header(format!("x-junk-{i}"), "j".repeat(4000));
            }
            let response = request.send().await.unwrap();
            assert_eq!(response.status().as_u16(), status, "{path}");
        }
    }
    let grown = database_bytes(db).await - before;
    assert!(
        grown < 200 * 1024,
        "15 MB of refused bodies grew the database by {grown} bytes"
    );

    // Upload-Post deliveries that are not an `upload_completed` event are
    // answered `ignored` and not kept at all.
    assert_eq!(
        system.api_state.store.list_webhooks("upload-post").await.unwrap().len(),
        0
    );
    for provider in ["kieai", "telegram"] {
        let deliveries = system.api_state.store.list_webhooks(provider).await.unwrap();
        assert_eq!(deliveries.len(), 5, "{provider}");
        for delivery in deliveries {
            assert_eq!(delivery.body_size, BODY_BYTES as i64);
            assert_eq!(delivery.body_sha256, hash);
            assert!(delivery.body.len() <= 1024, "{} bytes kept", delivery.body.len());
            assert!(delivery.body.starts_with('\u{FFFD}'));
            let headers = delivery.headers.as_object().unwrap();
            assert!(headers.len() <= 31, "{} headers kept", headers.len());
            assert!(
                headers
                    .values()
                    .all(|v| v.as_str().is_none_or(|v| v.chars().count() <= 256)),
                "a header value kept whole"
            );
            assert!(delivery.idempotency_key.is_none(), "no key consumed");
        }
    }
    system.stop_idle().await;
}

conformance_tests!(megabytes_of_refused_bodies_grow_the_database_by_kilobytes);

//! Schedules with real processes: two API processes (`mw serve api`) on
//! one database fire every schedule, one of them killed (`kill -9`) and
//! started again on the way. Every firing time is started once or counted
//! as skipped by the next firing, never started twice, and each run is
//! paid for once.

use std::time::Duration;

use chrono::{DateTime, Utc};
use myloware_testkit::cluster::Cluster;
use myloware_testkit::{API_KEY, JsonAnswer, TestDb, conformance_tests, wait_until};
use serde_json::json;

const MW: &str = env!("CARGO_BIN_EXE_mw-system");

/// Waits until every schedule has recorded at least `n` firings.
async fn firings_reach(db: &TestDb, ids: &[String], n: usize) {
    let store = myloware_api::store::open(db);
    let what = format!("{n} firings of each schedule");
    wait_until(Duration::from_secs(60), Duration::from_millis(50), &what, || {
        let store = store.clone();
        async move {
            for id in ids {
                let count = store.list_firings(id, 1000).await.unwrap().len();
                if count < n {
                    return Err(format!("{id} has {count}"));
                }
            }
            Ok(())
        }
    })
    .await;
}

async fn two_api_processes_fire_each_time_once_across_a_kill(db: &TestDb) {
    let tick = vec![("SCHEDULE_TICK_MS".to_string(), "50".to_string())];
    let mut cluster = Cluster::start(MW, db.url(), tick).await;
    let (replica, replica_port) = cluster.spawn_api_replica().await;
    let replica_url = format!("http://127.0.0.1:{replica_port}");
    let mut ids = Vec::new();
    for topic in ["one", "two", "three"] {
        let body = json!({"project": "test_video_gen", "cron": "* * * * * *", "timezone": "UTC",
                          "input": {"topic": topic}});
        let created = cluster
            .http
            .post(format!("{}/v1/schedules", cluster.api_url()))
            .header("x-api-key", API_KEY)
            .json(&body)
            .json_answer()
            .await;
        ids.push(created["id"].as_str().expect("a schedule id").to_string());
    }
    firings_reach(db, &ids, 2).await;
    // kill -9 of one API while both fire; the other goes on alone, then
    // the killed one comes back.
    cluster.kill_api();
    firings_reach(db, &ids, 4).await;
    cluster.start_api().await;
    firings_reach(db, &ids, 6).await;
    for id in &ids {
        let paused = cluster
            .http
            .post(format!("{replica_url}/v1/schedules/{id}/pause"))
            .header("x-api-key", API_KEY)
            .json_answer()
            .await;
        assert_eq!(paused["status"], "paused", "{paused}");
    }

    let store = myloware_api::store::open(db);
    let mut run_ids = Vec::new();
    for id in &ids {
        let mut firings = store.list_firings(id, 1000).await.unwrap();
        firings.reverse();
        // Each second once: fired, or counted by the firing before it.
        for pair in firings.windows(2) {
            let expected = pair[0].fire_at + chrono::Duration::seconds(1 + pair[0].skipped);
            assert_eq!(pair[1].fire_at, expected, "{id}: {firings:?}; {}", cluster.logs());
        }
        for firing in &firings {
            assert!(firing.run_id.is_some(), "{id}: refused {firing:?}");
        }
        // A run per firing, tracing back to its firing time.
        let mut runs: Vec<(DateTime<Utc>, String)> = Vec::new();
        for firing in &firings {
            let run_id = firing.run_id.clone().unwrap();
            let run = cluster.run(&run_id).await;
            let schedule = &run["payload"]["metadata"]["schedule"];
            assert_eq!(schedule["id"], id.as_str(), "{run}");
            let at: DateTime<Utc> = schedule["fireAt"].as_str().unwrap().parse().unwrap();
            runs.push((at, run_id));
        }
        assert!(runs.iter().zip(&firings).all(|((at, _), f)| *at == f.fire_at));
        let all = store
            .list_runs(&myloware_api::store::RunQuery {
                limit: 1000,
                ..Default::default()
            })
            .await
            .unwrap();
        let of_schedule = all
            .iter()
            .filter(|run| run.payload["metadata"]["schedule"]["id"] == id.as_str())
            .count();
        assert_eq!(of_schedule, firings.len(), "{id}: runs besides its firings'");
        run_ids.extend(runs.into_iter().map(|(_, run_id)| run_id));
    }
    cluster.wait_all(&run_ids, "published", Duration::from_secs(120)).await;
    cluster.assert_paid_once(db, &run_ids, None).await;
    drop(replica);
}

conformance_tests!(multi_thread: two_api_processes_fire_each_time_once_across_a_kill);

//! Replicas: two API and two orchestrator processes on one Postgres, each
//! kind behind a round-robin load balancer (callbacks, events, commands and
//! the test's own requests all go through them). No process relies on
//! another being up, or on a lock of its own: one of each kind is killed
//! (`kill -9`) and started again while runs are in flight, and every run is
//! still published, each event applied once in order, each paid call made
//! once; with both up, both orchestrators take work.

use std::time::Duration;

use myloware_testkit::cluster::{Cluster, smoke};
use myloware_testkit::{Lcg, TestDb};

const MW: &str = env!("CARGO_BIN_EXE_mw-system");

/// The kie.ai submissions an orchestrator made since it started, from its
/// `/metrics`.
async fn kieai_submissions(cluster: &Cluster, port: u16) -> u64 {
    let text = cluster
        .http
        .get(format!("http://127.0.0.1:{port}/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    text.lines()
        .filter(|line| line.starts_with("provider_requests_total{") && line.contains("provider=\"kieai\""))
        .filter(|line| line.contains("operation=\"submit\""))
        .filter_map(|line| line.rsplit(' ').next()?.parse::<f64>().ok())
        .sum::<f64>() as u64
}

/// Under `CI`, a missing `TEST_DATABASE_URL` fails this test.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_apis_and_two_orchestrators_under_kill_nine_lose_and_repeat_nothing() {
    let Some(db) = TestDb::postgres().await else {
        return;
    };
    let mut cluster = Cluster::replicas(MW, db.url(), 2, 2).await;
    let mut apis = vec![cluster.spawn_api(0).await, cluster.spawn_api(1).await];
    let mut orchestrators = vec![cluster.spawn_orchestrator(0, None), cluster.spawn_orchestrator(1, None)];

    let ids = cluster.start_runs(30, smoke).await;
    let seed = myloware_testkit::seed();
    let mut random = Lcg(seed);
    for round in 0..4 {
        tokio::time::sleep(Duration::from_millis(200 + random.below(800))).await;
        let (api, orchestrator) = (random.below(2) as usize, random.below(2) as usize);
        eprintln!("seed {seed}, round {round}: kill -9 api {api} and orchestrator {orchestrator}");
        apis.swap_remove(api).kill_nine();
        orchestrators.swap_remove(orchestrator).kill_nine();
        // Down for a moment: the balancers send everything to the others.
        tokio::time::sleep(Duration::from_millis(100 + random.below(400))).await;
        apis.insert(api, cluster.spawn_api(api).await);
        orchestrators.insert(orchestrator, cluster.spawn_orchestrator(orchestrator, None));
    }
    cluster.wait_all(&ids, "published", Duration::from_secs(120)).await;
    cluster.assert_paid_once(&db, &ids, Some(2)).await;
    cluster.assert_published_in_full(&ids).await;
    cluster.assert_events_complete(&db, &ids).await;

    // Both up, nobody killed: the work is shared.
    let ports = cluster.orchestrator_ports.clone();
    let before = [
        kieai_submissions(&cluster, ports[0]).await,
        kieai_submissions(&cluster, ports[1]).await,
    ];
    let more = cluster.start_runs(20, smoke).await;
    cluster.wait_all(&more, "published", Duration::from_secs(90)).await;
    cluster.assert_paid_once(&db, &more, Some(2)).await;
    let after = [
        kieai_submissions(&cluster, ports[0]).await,
        kieai_submissions(&cluster, ports[1]).await,
    ];
    let (first, second) = (after[0] - before[0], after[1] - before[1]);
    assert_eq!(first + second, 40, "20 runs of 2 clips, each submitted once");
    assert!(
        first > 0 && second > 0,
        "both orchestrators take work: {first} and {second} clips"
    );
    drop((apis, orchestrators));
}

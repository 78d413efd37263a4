//! A database of the benchmark's own: a new temporary SQLite file, or a new
//! schema in the Postgres database the user names (reached through
//! `options=-c search_path=…`, like the test kit's `myloware_testkit::db`), removed by
//! [`BenchDb::cleanup`].

use std::path::{Path, PathBuf};

use anyhow::{Context, bail, ensure};

use crate::unique_suffix;

pub struct BenchDb {
    /// What the services get as `DATABASE_URL`.
    pub url: String,
    cleanup: Cleanup,
}

enum Cleanup {
    SqliteFile(PathBuf),
    PostgresSchema { admin_url: String, schema: String },
}

impl BenchDb {
    /// `None`: a temporary SQLite file; `sqlite://FILE` (must not exist);
    /// `postgres://…`: a fresh schema in that database.
    pub async fn prepare(url: Option<&str>) -> anyhow::Result<BenchDb> {
        match url {
            None => {
                let path = std::env::temp_dir().join(format!("myloware-bench-{}.db", unique_suffix()));
                Ok(BenchDb {
                    url: format!("sqlite://{}", path.display()),
                    cleanup: Cleanup::SqliteFile(path),
                })
            }
            Some(url) if url.starts_with("sqlite:") => {
                let path = url
                    .trim_start_matches("sqlite://")
                    .trim_start_matches("sqlite:")
                    .split('?')
                    .next()
                    .unwrap_or_default();
                ensure!(
                    !Path::new(path).exists(),
                    "{path} exists: the benchmark wants a fresh SQLite file (it deletes it afterwards)"
                );
                Ok(BenchDb {
                    url: url.to_string(),
                    cleanup: Cleanup::SqliteFile(PathBuf::from(path)),
                })
            }
            Some(url) if url.starts_with("postgres://") || url.starts_with("postgresql://") => {
                let schema = format!("mw_bench_{}", unique_suffix());
                let schema_url = myloware_testkit::db::create_schema(url, &schema)
                    .await
                    .context("cannot create the benchmark schema (create the database first)")?;
                Ok(BenchDb {
                    url: schema_url,
                    cleanup: Cleanup::PostgresSchema {
                        admin_url: url.to_string(),
                        schema,
                    },
                })
            }
            Some(_) => bail!("--database-url must start with sqlite:// or postgres://"),
        }
    }

    /// `sqlite` or `postgres`.
    pub fn backend(&self) -> &'static str {
        match self.cleanup {
            Cleanup::SqliteFile(_) => "sqlite",
            Cleanup::PostgresSchema { .. } => "postgres",
        }
    }

    pub fn is_postgres(&self) -> bool {
        self.backend() == "postgres"
    }

    /// On Postgres, the database the benchmark's schema is in (its URL
    /// without the schema's search path).
    pub fn postgres_database(&self) -> Option<&str> {
        match &self.cleanup {
            Cleanup::SqliteFile(_) => None,
            Cleanup::PostgresSchema { admin_url, .. } => Some(admin_url),
        }
    }

    /// On Postgres, `VACUUM (ANALYZE)` of the benchmark's tables every
    /// `every`, in the background, as autovacuum would do on a server that
    /// runs it (this machine's has `autovacuum = off`: without statistics
    /// the planner keeps the plans of empty tables, and dead rows pile up).
    /// `None` on SQLite, or when `every` is zero.
    pub async fn maintain(&self, every: std::time::Duration) -> anyhow::Result<Option<Maintenance>> {
        let Cleanup::PostgresSchema { admin_url, schema } = &self.cleanup else {
            return Ok(None);
        };
        if every.is_zero() {
            return Ok(None);
        }
        let pool = sqlx::PgPool::connect(admin_url).await?;
        let autovacuum: String = sqlx::query_scalar("SHOW autovacuum").fetch_one(&pool).await?;
        println!(
            "  maintenance Postgres autovacuum is {autovacuum}; VACUUM (ANALYZE) of the benchmark's tables every {every:?}"
        );
        let (stop, mut stopped) = tokio::sync::watch::channel(false);
        let schema = schema.clone();
        let task = tokio::spawn(async move {
            let mut passes = 0u32;
            loop {
                tokio::select! {
                    _ = tokio::time::sleep(every) => {}
                    _ = stopped.changed() => break,
                }
                let tables: Vec<String> =
                    sqlx::query_scalar("SELECT tablename::text FROM pg_tables WHERE schemaname = $1")
                        .bind(&schema)
                        .fetch_all(&pool)
                        .await
                        .unwrap_or_default();
                let list = tables
                    .iter()
                    .map(|t| format!("{schema}.{t}"))
                    .collect::<Vec<_>>()
                    .join(", ");
                if !list.is_empty()
                    && sqlx::query(sqlx::AssertSqlSafe(format!("VACUUM (ANALYZE) {list}")))
                        .execute(&pool)
                        .await
                        .is_ok()
                {
                    passes += 1;
                }
            }
            pool.close().await;
            passes
        });
        Ok(Some(Maintenance { stop, task }))
    }

    /// Removes the file or drops the schema; `keep` only says where it is.
    pub async fn finish(self, keep: bool) {
        if keep {
            eprintln!("kept the benchmark database: {}", self.url);
        } else {
            self.cleanup().await;
        }
    }

    pub async fn cleanup(self) {
        match self.cleanup {
            Cleanup::SqliteFile(path) => myloware_testkit::db::remove_sqlite_files(&path),
            Cleanup::PostgresSchema { admin_url, schema } => {
                if let Err(err) = myloware_testkit::db::drop_schema(&admin_url, &schema).await {
                    eprintln!("warning: could not drop schema {schema}: {err}");
                }
            }
        }
    }
}

/// The background `VACUUM (ANALYZE)` of [`BenchDb::maintain`].
pub struct Maintenance {
    stop: tokio::sync::watch::Sender<bool>,
    task: tokio::task::JoinHandle<u32>,
}

impl Maintenance {
    /// Stops it; how many passes ran.
    pub async fn stop(self) -> u32 {
        let _ = self.stop.send(true);
        self.task.await.unwrap_or(0)
    }
}

/// Reads the services' tables directly, to watch runs without adding
/// requests to the API under test (one small pool, no migrations).
pub struct Probe(pub myloware_db::Db);

macro_rules! on_pool {
    ($db:expr, |$pool:ident| $body:expr) => {
        match $db {
            myloware_db::Db::Sqlite($pool) => $body,
            myloware_db::Db::Postgres($pool) => $body,
        }
    };
}

impl Probe {
    pub async fn connect(url: &str) -> anyhow::Result<Probe> {
        let settings = myloware_db::PoolSettings {
            max_connections: 2,
            ..myloware_db::PoolSettings::default()
        };
        Ok(Probe(myloware_db::Db::connect(url, settings).await?))
    }

    /// The text column of the rows `sql` selects with `$1` = `value`.
    async fn texts(&self, sql: &'static str, value: &str) -> anyhow::Result<Vec<String>> {
        Ok(on_pool!(&self.0, |pool| sqlx::query_scalar(sql)
            .bind(value)
            .fetch_all(pool)
            .await?))
    }

    /// The API's status of one run.
    pub async fn run_status(&self, run_id: &str) -> anyhow::Result<Option<String>> {
        Ok(self.texts("SELECT status FROM runs WHERE id = $1", run_id).await?.pop())
    }

    /// Runs per status.
    pub async fn status_counts(&self) -> anyhow::Result<std::collections::BTreeMap<String, i64>> {
        let sql = "SELECT status, COUNT(*) FROM runs GROUP BY status";
        let rows: Vec<(String, i64)> = on_pool!(&self.0, |pool| sqlx::query_as(sql).fetch_all(pool).await?);
        Ok(rows.into_iter().collect())
    }

    /// Ids of the runs in `status`.
    pub async fn runs_in(&self, status: &str) -> anyhow::Result<Vec<String>> {
        self.texts("SELECT id FROM runs WHERE status = $1", status).await
    }

    /// `(column value, count)` of `SELECT {column}, COUNT(*) FROM {table} GROUP BY 1`.
    pub async fn group_count(&self, table: &str, column: &str) -> anyhow::Result<Vec<(String, i64)>> {
        let sql = format!("SELECT {column}, COUNT(*) FROM {table} GROUP BY {column} ORDER BY {column}");
        Ok(on_pool!(&self.0, |pool| sqlx::query_as(sqlx::AssertSqlSafe(sql))
            .fetch_all(pool)
            .await?))
    }

    /// For each run approved at `first_gate` since `since` that has reached
    /// `second_gate`: when it was approved and when it reached the second
    /// gate, in milliseconds since `since`.
    pub async fn gate_to_gate_ms(
        &self,
        first_gate: &str,
        second_gate: &str,
        since: chrono::DateTime<chrono::Utc>,
    ) -> anyhow::Result<Vec<(f64, f64)>> {
        type Pair = (chrono::DateTime<chrono::Utc>, chrono::DateTime<chrono::Utc>);
        let rows: Vec<Pair> = on_pool!(&self.0, |pool| sqlx::query_as(
            "SELECT a.resolved_at, b.requested_at FROM gates a JOIN gates b ON b.run_id = a.run_id AND b.gate = $2 \
             WHERE a.gate = $1 AND a.status = 'approved' AND a.resolved_at >= $3"
        )
        .bind(first_gate)
        .bind(second_gate)
        .bind(since)
        .fetch_all(pool)
        .await?);
        let ms =
            |at: chrono::DateTime<chrono::Utc>| (at - since).num_microseconds().unwrap_or(i64::MAX) as f64 / 1000.0;
        Ok(rows.into_iter().map(|(a, b)| (ms(a), ms(b))).collect())
    }

    /// Milliseconds from `from` to `to` of the rows of `table` whose `from`
    /// is at or after `since` and whose `to` is set.
    pub async fn lags_ms(
        &self,
        table: &str,
        from: &str,
        to: &str,
        since: chrono::DateTime<chrono::Utc>,
    ) -> anyhow::Result<Vec<f64>> {
        type Pair = (chrono::DateTime<chrono::Utc>, chrono::DateTime<chrono::Utc>);
        let sql = format!("SELECT {from}, {to} FROM {table} WHERE {to} IS NOT NULL AND {from} >= $1");
        let rows: Vec<Pair> = on_pool!(&self.0, |pool| sqlx::query_as(sqlx::AssertSqlSafe(sql))
            .bind(since)
            .fetch_all(pool)
            .await?);
        Ok(rows
            .into_iter()
            .map(|(a, b)| (b - a).num_microseconds().unwrap_or(i64::MAX) as f64 / 1000.0)
            .collect())
    }

    /// Rows of `table` whose `column` is at or after `since`.
    pub async fn count_since(
        &self,
        table: &str,
        column: &str,
        since: chrono::DateTime<chrono::Utc>,
    ) -> anyhow::Result<i64> {
        let sql = format!("SELECT COUNT(*) FROM {table} WHERE {column} >= $1");
        Ok(on_pool!(&self.0, |pool| sqlx::query_scalar(sqlx::AssertSqlSafe(sql))
            .bind(since)
            .fetch_one(pool)
            .await?))
    }

    /// Rows of `table` where `condition` (the caller's SQL) holds.
    pub async fn count_where(&self, table: &str, condition: &str) -> anyhow::Result<i64> {
        let sql = format!("SELECT COUNT(*) FROM {table} WHERE {condition}");
        Ok(on_pool!(&self.0, |pool| sqlx::query_scalar(sqlx::AssertSqlSafe(sql))
            .fetch_one(pool)
            .await?))
    }

    /// The server processes of the sessions whose client port is one of
    /// `ports` (`pg_stat_activity`; none on SQLite).
    pub async fn backends_of(&self, ports: &std::collections::HashSet<u16>) -> anyhow::Result<Vec<u32>> {
        let myloware_db::Db::Postgres(pool) = &self.0 else {
            return Ok(Vec::new());
        };
        let sessions: Vec<(i32, i32)> =
            sqlx::query_as("SELECT pid, client_port FROM pg_stat_activity WHERE client_port IS NOT NULL")
                .fetch_all(pool)
                .await?;
        Ok(sessions
            .into_iter()
            .filter(|(_, port)| u16::try_from(*port).is_ok_and(|port| ports.contains(&port)))
            .filter_map(|(pid, _)| u32::try_from(pid).ok())
            .collect())
    }

    /// Postgres's counters so far: the transactions committed in this
    /// database (`pg_stat_database.xact_commit`, as the backends report
    /// them, up to a second late) and the WAL flushes of the server
    /// (`pg_stat_wal.wal_sync`). Zeros on SQLite.
    pub async fn postgres_counters(&self) -> anyhow::Result<(i64, i64)> {
        let myloware_db::Db::Postgres(pool) = &self.0 else {
            return Ok((0, 0));
        };
        Ok(sqlx::query_as(
            "SELECT (SELECT xact_commit FROM pg_stat_database WHERE datname = current_database()), \
             (SELECT wal_sync FROM pg_stat_wal)",
        )
        .fetch_one(pool)
        .await?)
    }

    /// `SUM(executions.steps)`: the engine's steps so far.
    pub async fn engine_steps(&self) -> anyhow::Result<i64> {
        let sql = "SELECT CAST(COALESCE(SUM(steps), 0) AS BIGINT) FROM executions";
        Ok(on_pool!(&self.0, |pool| sqlx::query_scalar(sql)
            .fetch_one(pool)
            .await?))
    }

    /// Where the time went since `since`, stage by stage of the pipeline
    /// between the services, from their own timestamps: the API's commands
    /// (created → acknowledged by the orchestrator), the orchestrator's
    /// signals (received → consumed by a step), its outbox (committed →
    /// delivered to the API) and the API's applied events (committed by
    /// the orchestrator → applied). Printed, and returned as JSON.
    pub async fn stages(&self, since: chrono::DateTime<chrono::Utc>) -> anyhow::Result<serde_json::Value> {
        let stages = [
            (
                "API command, created → acked by the orchestrator",
                "commands",
                "created_at",
                "acked_at",
            ),
            (
                "orchestrator signal, received → consumed by a step",
                "signals",
                "received_at",
                "consumed_at",
            ),
            (
                "orchestrator event, committed → delivered to the API",
                "outbox",
                "created_at",
                "delivered_at",
            ),
            (
                "API event, committed by the orchestrator → applied",
                "run_events",
                "at",
                "applied_at",
            ),
        ];
        let mut json = serde_json::Map::new();
        for (what, table, from, to) in stages {
            let lags = self.lags_ms(table, from, to, since).await?;
            let summary = crate::stats::summarize_scaled(&lags, 1.0);
            println!("  {what}: {}", summary.line("ms"));
            json.insert(table.to_string(), summary.to_json());
        }
        Ok(serde_json::Value::Object(json))
    }

    pub async fn close(&self) {
        self.0.close().await;
    }
}

/// A poor man's profiler of Postgres: samples `pg_stat_activity` every
/// 50 ms and counts the statements seen running (the database's sessions,
/// this benchmark's and any other's), until stopped.
pub struct ActivitySampler {
    stop: tokio::sync::watch::Sender<bool>,
    task: tokio::task::JoinHandle<anyhow::Result<(u64, std::collections::HashMap<String, u64>)>>,
}

impl ActivitySampler {
    pub async fn start(url: &str) -> anyhow::Result<ActivitySampler> {
        let pool = sqlx::PgPool::connect(url).await?;
        let (stop, mut stopped) = tokio::sync::watch::channel(false);
        let task = tokio::spawn(async move {
            let mut seen = std::collections::HashMap::new();
            let mut samples = 0u64;
            let sql = "SELECT query FROM pg_stat_activity WHERE state = 'active' AND pid <> pg_backend_pid() \
                       AND datname = current_database()";
            while !*stopped.borrow() {
                let queries: Vec<String> = sqlx::query_scalar(sql).fetch_all(&pool).await?;
                samples += 1;
                for query in queries {
                    let key: String = query.split_whitespace().collect::<Vec<_>>().join(" ");
                    *seen.entry(key.chars().take(110).collect()).or_insert(0) += 1;
                }
                tokio::select! {
                    _ = tokio::time::sleep(std::time::Duration::from_millis(50)) => {}
                    _ = stopped.changed() => {}
                }
            }
            pool.close().await;
            Ok((samples, seen))
        });
        Ok(ActivitySampler { stop, task })
    }

    /// Stops sampling; prints the `top` statements by the share of samples
    /// that saw them running (the average number of sessions running each).
    pub async fn finish(self, top: usize) -> anyhow::Result<serde_json::Value> {
        let _ = self.stop.send(true);
        let (samples, seen) = self.task.await??;
        let mut seen: Vec<(String, u64)> = seen.into_iter().collect();
        seen.sort_by_key(|s| std::cmp::Reverse(s.1));
        println!("Postgres statements seen running ({samples} samples of pg_stat_activity, every 50 ms):");
        let mut json = Vec::new();
        for (query, count) in seen.into_iter().take(top) {
            let busy = count as f64 / samples.max(1) as f64;
            println!("  {busy:>5.2} sessions on average  {query}");
            json.push(serde_json::json!({"query": query, "sessions": crate::stats::r3(busy)}));
        }
        Ok(serde_json::Value::Array(json))
    }
}

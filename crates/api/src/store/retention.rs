//! Retention and the gauges: which old rows a prune removes, and the counts
//! behind `/metrics`.

/// Counts behind the API's gauges.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ApiGauges {
    /// `(project, status, runs)` of runs not ended.
    pub active_runs: Vec<(String, String, i64)>,
    pub dead_letters_open: i64,
    pub commands_pending: i64,
    pub chat_pushes_pending: i64,
}

/// What a retention prune deleted, or would delete (dry run): rows by
/// table name, every prunable table listed.
pub type Pruned = std::collections::BTreeMap<String, u64>;

/// The rows retention removes, per table, as `WHERE` clauses (`$1` is the
/// cutoff), so a dry run counts exactly what a real prune deletes. A clause
/// never depends on what an earlier one deletes, except `chat_messages`,
/// which reads the deliveries the `chat_deliveries` clause deletes before
/// it (a message goes once every push of it is done). Runs and gates stay:
/// they are the record of what was made and decided. Statuses listed are
/// the terminal ones (`RunStatus::is_terminal`).
pub(super) const PRUNABLE: [(&str, &str); 9] = [
    // The audit of operator actions, kept while their run is unfinished
    // (actions on unknown runs, or on none, go too).
    (
        "audit",
        "at < $1 AND NOT EXISTS (SELECT 1 FROM runs WHERE runs.id = audit.run_id \
           AND runs.status NOT IN ('published', 'failed', 'cancelled', 'rejected', 'expired'))",
    ),
    // Events applied to runs that ended before the cutoff (their order is
    // kept by runs.last_event_seq; the orchestrator never resends them).
    (
        "run_events",
        "run_id IN (SELECT id FROM runs \
           WHERE status IN ('published', 'failed', 'cancelled', 'rejected', 'expired') AND updated_at < $1)",
    ),
    // Acknowledged commands of runs that ended before the cutoff, except
    // the ones a gate shows as its decision's delivery.
    (
        "commands",
        "acked_at IS NOT NULL AND run_id IN (SELECT id FROM runs \
           WHERE status IN ('published', 'failed', 'cancelled', 'rejected', 'expired') AND updated_at < $1) \
         AND NOT EXISTS (SELECT 1 FROM gates WHERE gates.command_seq = commands.seq)",
    ),
    // Deliveries whose run has ended or is unknown (refused ones have no
    // run): no unfinished run can receive their idempotency key again.
    (
        "webhook_deliveries",
        "received_at < $1 AND NOT EXISTS (SELECT 1 FROM runs \
           WHERE runs.id = webhook_deliveries.run_id AND runs.status NOT IN ('published', 'failed', 'cancelled', 'rejected', 'expired'))",
    ),
    // Artifacts of runs that ended before the cutoff (a late event on an
    // ended run moves its updated_at, which only keeps them longer).
    (
        "artifacts",
        "run_id IN (SELECT id FROM runs \
           WHERE status IN ('published', 'failed', 'cancelled', 'rejected', 'expired') AND updated_at < $1)",
    ),
    // Dead letters replayed (resolved) before the cutoff; open ones stay,
    // and so do those of an unfinished run.
    (
        "dead_letters",
        "resolved_at IS NOT NULL AND resolved_at < $1 AND NOT EXISTS (SELECT 1 FROM runs \
           WHERE runs.id = dead_letters.run_id AND runs.status NOT IN ('published', 'failed', 'cancelled', 'rejected', 'expired'))",
    ),
    // Pushes that are done (delivered, or given up), unless of a line about
    // an unfinished run.
    (
        "chat_deliveries",
        "status IN ('delivered', 'failed') AND created_at < $1 AND NOT EXISTS (SELECT 1 FROM chat_messages m \
           JOIN runs ON runs.id = m.run_id WHERE m.seq = chat_deliveries.message_seq \
           AND runs.status NOT IN ('published', 'failed', 'cancelled', 'rejected', 'expired'))",
    ),
    // Chat lines before the cutoff, unless about an unfinished run or
    // still to be pushed somewhere.
    (
        "chat_messages",
        "created_at < $1 AND NOT EXISTS (SELECT 1 FROM runs WHERE runs.id = chat_messages.run_id \
           AND runs.status NOT IN ('published', 'failed', 'cancelled', 'rejected', 'expired')) \
         AND NOT EXISTS (SELECT 1 FROM chat_deliveries d WHERE d.message_seq = chat_messages.seq \
           AND NOT (d.status IN ('delivered', 'failed') AND d.created_at < $1))",
    ),
    // Firings of schedule times before the cutoff (a schedule's next
    // firing is always after its last, so an old firing time never comes
    // back to be claimed; the runs they started keep the schedule's id),
    // unless of an unfinished run; refused ones (no run) go.
    (
        "schedule_firings",
        "fire_at < $1 AND NOT EXISTS (SELECT 1 FROM runs WHERE runs.id = schedule_firings.run_id \
           AND runs.status NOT IN ('published', 'failed', 'cancelled', 'rejected', 'expired'))",
    ),
];

/// The [`ApiStore`](super::ApiStore) methods of retention and the gauges, handed on to `$next`
/// with the methods gathered so far (`sql.rs` chains every aggregate's).
macro_rules! retention_methods {
    ($next:ident ! ($($args:tt)*) $($methods:tt)*) => {
        $next! { $($args)* $($methods)*
            async fn prune(&self, cutoff: DateTime<Utc>, dry_run: bool) -> StoreResult<Pruned> {
                let mut tx = self.begin().await?;
                let pruned = myloware_db::prune_tables!(tx, PRUNABLE, cutoff, dry_run);
                tx.commit().await?;
                Ok(pruned)
            }

            async fn gauges(&self) -> StoreResult<ApiGauges> {
                let active_runs: Vec<(String, String, i64)> = sqlx::query_as(
                    "SELECT project, status, COUNT(*) FROM runs \
                     WHERE status NOT IN ('published', 'failed', 'cancelled', 'rejected', 'expired') \
                     GROUP BY project, status ORDER BY project, status",
                )
                .fetch_all(&self.pool)
                .await?;
                let (dead_letters_open, commands_pending, chat_pushes_pending): (i64, i64, i64) = sqlx::query_as(
                    "SELECT (SELECT COUNT(*) FROM dead_letters WHERE resolved_at IS NULL), \
                            (SELECT COUNT(*) FROM commands WHERE acked_at IS NULL), \
                            (SELECT COUNT(*) FROM chat_deliveries WHERE status = 'pending')",
                )
                .fetch_one(&self.pool)
                .await?;
                Ok(ApiGauges {
                    active_runs,
                    dead_letters_open,
                    commands_pending,
                    chat_pushes_pending,
                })
            }

            async fn ping(&self) -> StoreResult<()> {
                sqlx::query("SELECT 1").execute(&self.pool).await?;
                Ok(())
            }
        }
    };
}
pub(super) use retention_methods;

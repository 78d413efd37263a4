//! Schedules and their firings: created, listed, paused, resumed, deleted;
//! a due firing claimed by moving `next_fire_at` on from the value read
//! and recorded with the run it started, in the run's transaction
//! (`crate::schedules` decides what a firing starts).

use chrono::{DateTime, Utc};
use serde_json::Value;

use super::chat::ChatMessage;
use super::commands::NewCommand;
use super::common::text_enum;
use super::runs::{NewRun, Run};

text_enum! {
    /// Whether a schedule fires.
    pub enum ScheduleStatus {
        Active = "active",
        Paused = "paused",
    }
}

text_enum! {
    /// What a firing did.
    pub enum FiringOutcome {
        /// It started a run (`run_id`).
        Started = "started",
        /// A check refused the run (`reason`): a spend limit, `MAX_ACTIVE_RUNS`,
        /// a project or input no longer valid.
        Refused = "refused",
    }
}

/// A schedule as stored.
#[derive(Debug, Clone, PartialEq, sqlx::FromRow)]
pub struct Schedule {
    pub seq: i64,
    pub id: String,
    pub project: String,
    pub cron: String,
    pub timezone: String,
    /// The runs' inputs, taken in turn (`next_input` is the next one's index).
    #[sqlx(json)]
    pub inputs: Vec<Value>,
    /// The runs' options, as `POST /v1/runs/start` takes them.
    #[sqlx(json)]
    pub options: Value,
    #[sqlx(try_from = "String")]
    pub status: ScheduleStatus,
    /// `None` while paused (or when the pattern fires no more).
    pub next_fire_at: Option<DateTime<Utc>>,
    pub next_input: i64,
    /// The credential that created it (`key:<name>`).
    pub created_by: String,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// A schedule to insert (active, due at `next_fire_at`).
#[derive(Debug, Clone)]
pub struct NewSchedule {
    pub id: String,
    pub project: String,
    pub cron: String,
    pub timezone: String,
    pub inputs: Vec<Value>,
    pub options: Value,
    pub next_fire_at: DateTime<Utc>,
    pub created_by: String,
    pub created_at: DateTime<Utc>,
}

/// Filters of `GET /v1/schedules`; newest first, `before` an exclusive cursor.
#[derive(Debug, Clone, Default)]
pub struct ScheduleQuery {
    pub project: Option<String>,
    pub status: Option<ScheduleStatus>,
    pub before: Option<i64>,
    pub limit: u32,
}

/// One firing of a schedule.
#[derive(Debug, Clone, PartialEq, sqlx::FromRow)]
pub struct Firing {
    pub schedule_id: String,
    /// The firing time it was claimed for.
    pub fire_at: DateTime<Utc>,
    /// When it was handled.
    pub fired_at: DateTime<Utc>,
    #[sqlx(try_from = "String")]
    pub outcome: FiringOutcome,
    pub run_id: Option<String>,
    pub reason: Option<String>,
    /// Later firing times it stood for (missed while no API ran).
    pub skipped: i64,
}

/// The claim on a due firing: the schedule's `next_fire_at` as read
/// (`fire_at`), and what it becomes.
#[derive(Debug, Clone)]
pub struct FiringClaim {
    pub schedule_id: String,
    pub fire_at: DateTime<Utc>,
    pub next_fire_at: Option<DateTime<Utc>>,
    pub skipped: u32,
    /// Who is told when the firing is refused: this message, the reason
    /// appended to its text, written with the refusal.
    pub refusal_notice: Option<ChatMessage>,
}

/// What a claimed firing starts.
#[derive(Debug, Clone, Copy)]
pub enum FiringStart<'a> {
    /// This run with its start command (none for a proposal), unless
    /// `MAX_ACTIVE_RUNS` refuses it; the schedule's next input then is
    /// `next_input`.
    Run {
        run: &'a NewRun,
        command: Option<&'a NewCommand>,
        next_input: i64,
    },
    /// Nothing: a check refused it, for this reason.
    Refused(&'a str),
}

/// What became of a firing.
#[derive(Debug, Clone, PartialEq)]
pub enum Fired {
    Started(Box<Run>),
    Refused(String),
    /// Not this caller's: another replica claimed it first, or the schedule
    /// was paused, resumed or deleted since it was read. Nothing written.
    Lost,
}

pub(super) const SCHEDULE_COLUMNS: &str = "seq, id, project, cron, timezone, inputs, options, status, next_fire_at, \
     next_input, created_by, created_at, updated_at";

pub(super) const FIRING_COLUMNS: &str = "schedule_id, fire_at, fired_at, outcome, run_id, reason, skipped";

/// The [`ApiStore`](super::ApiStore) methods of schedules, handed on to
/// `$next` with the methods gathered so far (`sql.rs` chains every
/// aggregate's).
macro_rules! schedule_methods {
    ($next:ident ! ($($args:tt)*) $($methods:tt)*) => {
        $next! { $($args)* $($methods)*
            async fn insert_schedule(&self, schedule: &NewSchedule, cap: u32) -> StoreResult<Option<Schedule>> {
                // One statement: the count and the insert see the same rows.
                let inserted: Option<Schedule> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
                    "INSERT INTO schedules (id, project, cron, timezone, inputs, options, status, next_fire_at, \
                       created_by, created_at, updated_at) \
                     SELECT $1, $2, $3, $4, $5, $6, 'active', $7, $8, $9, $9 \
                     WHERE (SELECT COUNT(*) FROM schedules) < $10 RETURNING {SCHEDULE_COLUMNS}"
                )))
                .bind(&schedule.id)
                .bind(&schedule.project)
                .bind(&schedule.cron)
                .bind(&schedule.timezone)
                .bind(Json(&schedule.inputs))
                .bind(Json(&schedule.options))
                .bind(schedule.next_fire_at)
                .bind(&schedule.created_by)
                .bind(schedule.created_at)
                .bind(i64::from(cap))
                .fetch_optional(&self.pool)
                .await?;
                Ok(inserted)
            }

            async fn get_schedule(&self, id: &str) -> StoreResult<Option<Schedule>> {
                let schedule: Option<Schedule> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
                    "SELECT {SCHEDULE_COLUMNS} FROM schedules WHERE id = $1"
                )))
                .bind(id)
                .fetch_optional(&self.pool)
                .await?;
                Ok(schedule)
            }

            async fn list_schedules(&self, query: &ScheduleQuery) -> StoreResult<Vec<Schedule>> {
                let schedules: Vec<Schedule> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
                    "SELECT {SCHEDULE_COLUMNS} FROM schedules \
                     WHERE ($1 IS NULL OR project = $1) AND ($2 IS NULL OR status = $2) AND ($3 IS NULL OR seq < $3) \
                     ORDER BY seq DESC LIMIT $4"
                )))
                .bind(&query.project)
                .bind(query.status.map(|s| s.as_str()))
                .bind(query.before)
                .bind(i64::from(query.limit))
                .fetch_all(&self.pool)
                .await?;
                Ok(schedules)
            }

            async fn delete_schedule(&self, id: &str) -> StoreResult<bool> {
                let deleted = sqlx::query("DELETE FROM schedules WHERE id = $1")
                    .bind(id)
                    .execute(&self.pool)
                    .await?
                    .rows_affected();
                Ok(deleted > 0)
            }

            async fn pause_schedule(&self, id: &str) -> StoreResult<bool> {
                let paused = sqlx::query(
                    "UPDATE schedules SET status = 'paused', next_fire_at = NULL, updated_at = $2 \
                     WHERE id = $1 AND status = 'active'",
                )
                .bind(id)
                .bind(now())
                .execute(&self.pool)
                .await?
                .rows_affected();
                Ok(paused > 0)
            }

            async fn resume_schedule(&self, id: &str, next_fire_at: Option<DateTime<Utc>>) -> StoreResult<bool> {
                let resumed = sqlx::query(
                    "UPDATE schedules SET status = 'active', next_fire_at = $2, updated_at = $3 \
                     WHERE id = $1 AND status = 'paused'",
                )
                .bind(id)
                .bind(next_fire_at)
                .bind(now())
                .execute(&self.pool)
                .await?
                .rows_affected();
                Ok(resumed > 0)
            }

            async fn schedules_due(&self, now: DateTime<Utc>, limit: u32) -> StoreResult<Vec<Schedule>> {
                let due: Vec<Schedule> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
                    "SELECT {SCHEDULE_COLUMNS} FROM schedules \
                     WHERE status = 'active' AND next_fire_at <= $1 ORDER BY next_fire_at LIMIT $2"
                )))
                .bind(now)
                .bind(i64::from(limit))
                .fetch_all(&self.pool)
                .await?;
                Ok(due)
            }

            async fn fire_schedule(&self, claim: &FiringClaim, start: FiringStart<'_>) -> StoreResult<Fired> {
                let fired_at = now();
                // The claim: of the writers that read this `next_fire_at`,
                // one moves it on; the others find it moved and stop.
                let claimed = sqlx::query(
                    "UPDATE schedules SET next_fire_at = $3, updated_at = $4 \
                     WHERE id = $1 AND status = 'active' AND next_fire_at = $2",
                )
                .bind(&claim.schedule_id)
                .bind(claim.fire_at)
                .bind(claim.next_fire_at)
                .bind(fired_at);
                let Some(mut tx) = guarded(self.begin().await?, claimed).await? else {
                    return Ok(Fired::Lost);
                };
                let started = match start {
                    FiringStart::Refused(reason) => Err(reason.to_string()),
                    FiringStart::Run { run, command, next_input } => match run_cap_reached!(run, &mut tx) {
                        Some(full) => Err(full.to_string()),
                        None => Ok((run, command, next_input)),
                    },
                };
                let (outcome, run_id, reason) = match &started {
                    Ok((run, ..)) => (FiringOutcome::Started, Some(run.id.as_str()), None),
                    Err(reason) => (FiringOutcome::Refused, None, Some(reason.as_str())),
                };
                // A firing time starts one run at most, whoever claims it.
                let recorded = sqlx::query(
                    "INSERT INTO schedule_firings (schedule_id, fire_at, fired_at, outcome, run_id, reason, skipped) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT (schedule_id, fire_at) DO NOTHING",
                )
                .bind(&claim.schedule_id)
                .bind(claim.fire_at)
                .bind(fired_at)
                .bind(outcome.as_str())
                .bind(run_id)
                .bind(reason)
                .bind(i64::from(claim.skipped));
                let Some(mut tx) = guarded(tx, recorded).await? else {
                    return Ok(Fired::Lost);
                };
                let fired = match started {
                    Err(reason) => {
                        if let Some(notice) = &claim.refusal_notice {
                            let notice = ChatMessage {
                                text: format!("{}{reason}", notice.text),
                                ..notice.clone()
                            };
                            insert_chat!(&notice, tx);
                        }
                        Fired::Refused(reason)
                    }
                    Ok((run, command, next_input)) => {
                        let inserted = insert_run!(run, command, &mut tx);
                        sqlx::query("UPDATE schedules SET next_input = $2 WHERE id = $1")
                            .bind(&claim.schedule_id)
                            .bind(next_input)
                            .execute(&mut *tx)
                            .await?;
                        Fired::Started(Box::new(inserted))
                    }
                };
                tx.commit().await?;
                Ok(fired)
            }

            async fn list_firings(&self, schedule_id: &str, limit: u32) -> StoreResult<Vec<Firing>> {
                let firings: Vec<Firing> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
                    "SELECT {FIRING_COLUMNS} FROM schedule_firings WHERE schedule_id = $1 ORDER BY fire_at DESC LIMIT $2"
                )))
                .bind(schedule_id)
                .bind(i64::from(limit))
                .fetch_all(&self.pool)
                .await?;
                Ok(firings)
            }
        }
    };
}
pub(super) use schedule_methods;

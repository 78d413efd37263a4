//! The API's reconciler: the background loop that delivers the commands
//! whose next attempt is due (`crate::commands`), replays the dead
//! letters whose backoff has passed (`crate::dlq`), and reminds and
//! expires gates that waited too long (`crate::expiry`). It sits above both, so
//! neither imports the other's loop.

use std::time::Duration;

use chrono::Utc;

use crate::ApiState;
use crate::{commands, dlq, expiry};

/// Background task: delivers due commands and retries due dead letters
/// until `shutdown` fires.
pub async fn reconcile(state: ApiState, every: Duration, mut shutdown: tokio::sync::watch::Receiver<bool>) {
    loop {
        match state.store.commands_due(Utc::now(), 100).await {
            Ok(due) => {
                // Oldest first, one drain per run (it starts with the run's
                // oldest pending command, which is the due one).
                let mut drained = std::collections::HashSet::new();
                for command in due {
                    if drained.insert(command.run_id.clone()) {
                        let _ = commands::deliver_pending(&state, &command.run_id).await;
                    }
                }
            }
            Err(err) => tracing::error!(error = %err, "command reconciler cannot read commands"),
        }
        dlq::retry_due(&state).await;
        expiry::sweep(&state).await;
        tokio::select! {
            _ = tokio::time::sleep(every) => {}
            _ = shutdown.changed() => return,
        }
    }
}

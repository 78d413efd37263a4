//! Group commit of provider callbacks: the verified kie.ai callbacks that
//! arrive while a transaction is committing are recorded together, with
//! their commands, in the next one (`ApiStore::record_callbacks`: three
//! multi-row statements and one WAL flush however many there are).
//!
//! No callback waits for a timer: a batch is whatever queued up while the
//! previous one committed, so alone a callback commits at once, and under
//! load batches grow with the load. Each caller is answered after its own
//! batch committed (its data is durable). When a batch fails, each of its
//! callbacks is tried again in a transaction of its own, so one bad item
//! does not fail its neighbours.

use std::sync::{Arc, OnceLock};

use async_trait::async_trait;
use tokio::sync::{Semaphore, mpsc, oneshot};

use crate::store::{ApiStore, CallbackRecorded, NewCommand, StoreError, WebhookDelivery};

/// Most callbacks in one transaction.
const MAX_BATCH: usize = 256;
/// Batches committing at once.
const CONCURRENT: usize = 2;
/// Callbacks waiting for a batch; a full queue makes callers wait (the
/// request's own deadline bounds that).
const QUEUE: usize = 4096;

type Callback = (WebhookDelivery, NewCommand);
type Answer = oneshot::Sender<Result<CallbackRecorded, StoreError>>;

struct Pending {
    callback: Callback,
    answer: Answer,
}

/// What a batch is committed with: the store (a fake in the tests below).
#[async_trait]
trait RecordCallbacks: Send + Sync {
    async fn record(&self, callbacks: &[Callback]) -> Result<Vec<CallbackRecorded>, StoreError>;
}

#[async_trait]
impl RecordCallbacks for Arc<dyn ApiStore> {
    async fn record(&self, callbacks: &[Callback]) -> Result<Vec<CallbackRecorded>, StoreError> {
        self.record_callbacks(callbacks).await
    }
}

pub struct CallbackCommitter {
    store: Arc<dyn ApiStore>,
    /// Started on first use (inside the runtime).
    queue: OnceLock<mpsc::Sender<Pending>>,
}

impl CallbackCommitter {
    pub fn new(store: Arc<dyn ApiStore>) -> CallbackCommitter {
        CallbackCommitter {
            store,
            queue: OnceLock::new(),
        }
    }

    /// Records an accepted callback and its command, durably, and says
    /// what became of it: new; repeated (its key was used before: recorded
    /// as a duplicate delivery, nothing enqueued); or for a run not known
    /// here (nothing recorded).
    pub async fn record(&self, delivery: WebhookDelivery, command: NewCommand) -> Result<CallbackRecorded, StoreError> {
        let queue = self.queue.get_or_init(|| {
            let (sender, receiver) = mpsc::channel(QUEUE);
            tokio::spawn(commit_batches(self.store.clone(), receiver));
            sender
        });
        let (answer, answered) = oneshot::channel();
        let pending = Pending {
            callback: (delivery, command),
            answer,
        };
        // The committer only stops with the runtime.
        let stopped = || StoreError::Database(sqlx::Error::PoolClosed);
        queue.send(pending).await.map_err(|_| stopped())?;
        answered.await.map_err(|_| stopped())?
    }
}

async fn commit_batches(store: Arc<dyn ApiStore>, mut queue: mpsc::Receiver<Pending>) {
    let slots = Arc::new(Semaphore::new(CONCURRENT));
    while let Some(first) = queue.recv().await {
        // Waiting for a slot is what lets the next batch fill up.
        let Ok(slot) = slots.clone().acquire_owned().await else {
            return;
        };
        let mut batch = vec![first];
        while batch.len() < MAX_BATCH
            && let Ok(next) = queue.try_recv()
        {
            batch.push(next);
        }
        let store = store.clone();
        tokio::spawn(async move {
            commit(&store, batch).await;
            drop(slot);
        });
    }
}

async fn commit(store: &dyn RecordCallbacks, batch: Vec<Pending>) {
    let (callbacks, answers): (Vec<_>, Vec<_>) = batch.into_iter().map(|p| (p.callback, p.answer)).unzip();
    match store.record(&callbacks).await {
        Ok(recorded) => {
            for (answer, recorded) in answers.into_iter().zip(recorded) {
                let _ = answer.send(Ok(recorded));
            }
        }
        Err(err) if callbacks.len() > 1 => {
            tracing::warn!(callbacks = callbacks.len(), error = %err, "a callback batch failed; committing each alone");
            for (callback, answer) in callbacks.into_iter().zip(answers) {
                let alone = store.record(std::slice::from_ref(&callback)).await;
                let _ = answer.send(alone.map(|recorded| recorded[0]));
            }
        }
        Err(err) => {
            if let Some(answer) = answers.into_iter().next() {
                let _ = answer.send(Err(err));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use chrono::Utc;
    use myloware_core::wire::{ExecutionCommand, Signal, SignalDelivery};
    use serde_json::json;

    use super::*;
    use crate::store::{SignatureStatus, WebhookOutcome};

    /// A store whose transactions fail when they hold the key `poison`, and
    /// that remembers the keys of each transaction it committed.
    #[derive(Default)]
    struct Fake {
        committed: Mutex<Vec<Vec<String>>>,
    }

    #[async_trait]
    impl RecordCallbacks for Fake {
        async fn record(&self, callbacks: &[Callback]) -> Result<Vec<CallbackRecorded>, StoreError> {
            let keys: Vec<String> = callbacks.iter().map(|(d, _)| key_of(d)).collect();
            if keys.iter().any(|k| k == "poison") {
                return Err(StoreError::Database(sqlx::Error::Protocol("refused".into())));
            }
            self.committed.lock().unwrap().push(keys);
            Ok(vec![CallbackRecorded::New; callbacks.len()])
        }
    }

    fn key_of(delivery: &WebhookDelivery) -> String {
        delivery.idempotency_key.clone().unwrap()
    }

    fn pending(key: &str) -> (Pending, oneshot::Receiver<Result<CallbackRecorded, StoreError>>) {
        let delivery = WebhookDelivery {
            provider: "kieai".into(),
            idempotency_key: Some(key.into()),
            run_id: Some("run_a".into()),
            headers: json!({}),
            body: "{}".into(),
            body_size: 2,
            body_sha256: String::new(),
            signature_status: SignatureStatus::Verified,
            outcome: WebhookOutcome::Accepted,
            received_at: Utc::now(),
        };
        let command = NewCommand::new(
            "run_a",
            ExecutionCommand::Signal(SignalDelivery {
                signal_id: format!("kieai:{key}"),
                signal: Signal::ClipReported {
                    task_id: key.into(),
                    index: 0,
                },
                replay_of: None,
            }),
        );
        let (answer, answered) = oneshot::channel();
        let pending = Pending {
            callback: (delivery, command),
            answer,
        };
        (pending, answered)
    }

    #[tokio::test]
    async fn a_batch_commits_in_one_transaction() {
        let fake = Fake::default();
        let (batch, answers): (Vec<_>, Vec<_>) = ["a", "b", "c"].into_iter().map(pending).unzip();

        commit(&fake, batch).await;

        for answered in answers {
            assert_eq!(answered.await.unwrap().unwrap(), CallbackRecorded::New);
        }
        assert_eq!(*fake.committed.lock().unwrap(), [["a", "b", "c"]]);
    }

    #[tokio::test]
    async fn one_failing_callback_does_not_fail_its_neighbours() {
        let fake = Fake::default();
        let (batch, receivers): (Vec<_>, Vec<_>) = ["a", "poison", "c"].into_iter().map(pending).unzip();

        commit(&fake, batch).await;

        let mut answers = Vec::new();
        for answered in receivers {
            answers.push(answered.await.unwrap());
        }
        assert_eq!(*answers[0].as_ref().unwrap(), CallbackRecorded::New);
        assert!(answers[1].is_err(), "the failing one gets its error");
        assert_eq!(*answers[2].as_ref().unwrap(), CallbackRecorded::New);
        assert_eq!(
            *fake.committed.lock().unwrap(),
            [vec!["a"], vec!["c"]],
            "after the batch failed, each alone"
        );
    }
}

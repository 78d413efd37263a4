//! Per-key async locks within this process: a chat user's turns, a run's
//! command deliveries. Entries nobody holds or waits on are dropped, so
//! the map stays as small as the number of keys in use.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use tokio::sync::OwnedMutexGuard;

#[derive(Default)]
pub struct KeyedLocks(Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>);

impl KeyedLocks {
    /// Waits until no one else holds `key`'s lock, then holds it until the
    /// guard is dropped.
    pub async fn lock(&self, key: &str) -> OwnedMutexGuard<()> {
        let lock = {
            let mut locks = self.0.lock().expect("lock map");
            // Forget keys nobody holds or waits on.
            locks.retain(|_, lock| Arc::strong_count(lock) > 1);
            locks.entry(key.to_string()).or_default().clone()
        };
        lock.lock_owned().await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[tokio::test]
    async fn one_holder_per_key_and_keys_are_independent() {
        let locks = Arc::new(KeyedLocks::default());
        let held = locks.lock("a").await;
        // Another key is free.
        drop(locks.lock("b").await);
        // The same key waits for the holder.
        let waiter = tokio::spawn({
            let locks = locks.clone();
            async move { drop(locks.lock("a").await) }
        });
        tokio::time::sleep(Duration::from_millis(20)).await;
        assert!(!waiter.is_finished());
        drop(held);
        tokio::time::timeout(Duration::from_secs(1), waiter)
            .await
            .unwrap()
            .unwrap();
        // Unused entries are forgotten.
        drop(locks.lock("c").await);
        assert_eq!(locks.0.lock().unwrap().len(), 1);
    }
}

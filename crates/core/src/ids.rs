//! Identifiers. Run ids look like `run_` followed by 12 lowercase
//! alphanumerics (`run_abc123def456`), short enough to read out in chat;
//! schedule ids `sch_` and the same (`sch_abc123def456`).

use rand::Rng;

const RUN_ID_PREFIX: &str = "run_";
const RUN_ID_LEN: usize = 12;
const ALPHABET: &[u8] = b"abcdefghijklmnopqrstuvwxyz0123456789";

const SCHEDULE_ID_PREFIX: &str = "sch_";

/// A fresh run id: `run_` + 12 random lowercase alphanumerics (62 bits).
pub fn new_run_id() -> String {
    new_id(RUN_ID_PREFIX)
}

/// A fresh schedule id: `sch_` + 12 random lowercase alphanumerics.
pub fn new_schedule_id() -> String {
    new_id(SCHEDULE_ID_PREFIX)
}

fn new_id(prefix: &str) -> String {
    let mut rng = rand::rng();
    let suffix: String = (0..RUN_ID_LEN)
        .map(|_| ALPHABET[rng.random_range(0..ALPHABET.len())] as char)
        .collect();
    format!("{prefix}{suffix}")
}

/// Whether `s` is shaped like a schedule id (`sch_` + 12 of the alphabet).
pub fn is_schedule_id(s: &str) -> bool {
    s.strip_prefix(SCHEDULE_ID_PREFIX)
        .is_some_and(|rest| rest.len() == RUN_ID_LEN && rest.bytes().all(|b| ALPHABET.contains(&b)))
}

/// Whether `s` is shaped like a run id. Older ids of other lengths are
/// accepted as long as they use the same alphabet, so lookups stay cheap
/// to reject without refusing ids created by earlier versions.
pub fn is_run_id(s: &str) -> bool {
    s.strip_prefix(RUN_ID_PREFIX).is_some_and(|rest| {
        (1..=64).contains(&rest.len())
            && rest
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
    })
}

/// Our request id of a run's publish at Upload-Post (the journal key of
/// the call, and what its status is looked up by). `attempt` counts the
/// publishes a retry asked for after a failed one (0 for the first).
pub fn publish_request_id(run_id: &str, attempt: u32) -> String {
    format!("{run_id}:quinn:publish:{}", attempt + 1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn run_ids_have_the_documented_shape() {
        let id = new_run_id();
        assert_eq!(id.len(), 16);
        assert!(id.starts_with("run_"));
        assert!(id[4..].bytes().all(|b| ALPHABET.contains(&b)));
        assert!(is_run_id(&id));
        let schedule = new_schedule_id();
        assert!(schedule.starts_with("sch_") && schedule.len() == 16);
        assert!(is_schedule_id(&schedule) && !is_schedule_id(&id) && !is_schedule_id("sch_ABC123def456"));
    }

    #[test]
    fn run_ids_are_distinct() {
        let ids: std::collections::HashSet<_> = (0..10_000).map(|_| new_run_id()).collect();
        assert_eq!(ids.len(), 10_000);
    }

    #[test]
    fn malformed_ids_are_refused() {
        for bad in ["", "run_", "abc123", "RUN_abc", "run_ABC", "run_a b", "run_../x"] {
            assert!(!is_run_id(bad), "{bad:?} accepted");
        }
        assert!(is_run_id("run_abc123"));
    }
}

//! Security: retention.

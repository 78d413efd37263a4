//! Security: timeouts.

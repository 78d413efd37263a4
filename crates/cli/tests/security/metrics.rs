//! Security: metrics.

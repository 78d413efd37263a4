//! Security: config.

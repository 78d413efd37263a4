//! Security: internal.

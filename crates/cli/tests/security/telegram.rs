//! Security: telegram.

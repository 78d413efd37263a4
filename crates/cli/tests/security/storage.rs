//! Security: storage.

//! Security: roles.

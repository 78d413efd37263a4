//! Security: page.

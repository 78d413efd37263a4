//! Security: limiter.

//! Security: kieai.

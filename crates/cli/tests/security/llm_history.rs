//! Security: llm_history.

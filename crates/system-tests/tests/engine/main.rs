//! The engine end to end: runs with the mock providers, LLM personas, and live mode against fake providers.

mod budget;
mod costs;
mod live;
mod llm;
mod runs;

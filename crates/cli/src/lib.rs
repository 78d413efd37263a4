//! Crate graph: `myloware-cli` (the `mw` binary) may import every other
//! MyloWare crate; none imports it.

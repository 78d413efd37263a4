//! `mw` built again for the system tests, as `mw-system`: Cargo builds a
//! package's binaries before its tests and names them in
//! `CARGO_BIN_EXE_mw-system`, so the tests never run a stale binary.

fn main() -> std::process::ExitCode {
    myloware_cli::main()
}

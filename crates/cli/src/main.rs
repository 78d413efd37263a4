fn main() -> std::process::ExitCode {
    myloware_cli::main()
}

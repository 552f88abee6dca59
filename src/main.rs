fn main() -> std::process::ExitCode {
    p2ptrace::cli::main()
}

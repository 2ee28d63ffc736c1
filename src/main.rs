//! The `ferry` binary: all the work is in the library.

fn main() -> std::process::ExitCode {
    ferry::main().into()
}

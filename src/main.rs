//! The `ferry` binary: all the work is in the library.

fn main() -> std::process::ExitCode {
    std::process::ExitCode::from(ferry::main() as u8)
}

//! `kubectl encrypt`: parse the arguments, run the command, exit with its code.

use std::process::ExitCode;

fn main() -> ExitCode {
    kubectl_encrypt::main_with_args(std::env::args_os())
}

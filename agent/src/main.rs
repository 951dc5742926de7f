//! The `nodewarden` binary: parse flags, validate them into one config, run
//! the subcommand. Exit codes: 0 ok, 1 problems found / plan not clean,
//! 2 usage or input error.

mod cli;
mod logging;

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    // the static build (packaging/build-static.sh) must not load the host's NSS modules
    nodewarden::host::sys::pin_static_nss();
    let args = match cli::Args::try_parse() {
        Ok(a) => a,
        Err(e) => {
            let code = if e.use_stderr() { 2 } else { 0 };
            let _ = e.print();
            return ExitCode::from(code);
        }
    };
    match cli::run_cli(args) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("nodewarden: error: {e:#}");
            ExitCode::from(2)
        }
    }
}

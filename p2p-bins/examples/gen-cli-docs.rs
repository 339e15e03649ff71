//! Writes the four programs' man pages and shell completions:
//!
//! ```text
//! cargo run -p p2p-bins --example gen-cli-docs -- OUT_DIR
//! ```
//!
//! gives `OUT_DIR/man/p2p-server.1` … and `OUT_DIR/completions/` (bash, zsh, fish, elvish,
//! PowerShell) for each of `p2p-server`, `p2p-peer`, `p2p-datetime` and `p2p-log`, from the same
//! argument definitions the programs parse (`p2p_bins::cli`). An example rather than a fifth
//! installed program: it is a packaging step, not something users run.

use std::path::PathBuf;
use std::process::ExitCode;

const NAME: &str = "gen-cli-docs";

fn main() -> ExitCode {
    let mut args = std::env::args_os().skip(1);
    let (Some(out), None) = (args.next(), args.next()) else {
        eprintln!("usage: cargo run -p p2p-bins --example {NAME} -- OUT_DIR");
        return ExitCode::from(2);
    };
    let out = PathBuf::from(out);
    match p2p_bins::cli::write_docs(&out) {
        Ok(written) => {
            for path in written {
                println!("{}", path.display());
            }
            ExitCode::SUCCESS
        }
        Err(e) => p2p_bins::fail(NAME, format!("writing to {}: {e}", out.display())),
    }
}

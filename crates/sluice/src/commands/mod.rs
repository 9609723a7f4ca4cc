//! One module per command group. Each owns its clap `Args` and returns
//! `Result<ExitCode, CliError>`.

pub mod check;
pub mod demo;
pub mod deploy;
pub mod doctor;
pub mod import;
pub mod proxy;
pub mod upgrade;
pub mod workspace;

use std::io::Write;
use std::process::ExitCode;

/// An error that ends the program: its message and the exit code it maps to.
///
/// Exit codes: 1 for an ordinary failure (bad name, unknown app, failed
/// test), 2 for unusable configuration (a broken rules or proxy file).
#[derive(Debug)]
pub struct CliError {
    pub code: u8,
    pub error: anyhow::Error,
}

impl CliError {
    /// Exit code 2: the configuration cannot be used at all.
    pub fn config(error: impl Into<anyhow::Error>) -> Self {
        CliError {
            code: 2,
            error: error.into(),
        }
    }

    /// Prints `sluice: <message>` (with its causes) and returns the exit code.
    pub fn report(self) -> ExitCode {
        let mut message = self.error.to_string();
        for cause in self.error.chain().skip(1) {
            message.push_str(": ");
            message.push_str(&cause.to_string());
        }
        let _ = writeln!(std::io::stderr(), "sluice: {message}");
        ExitCode::from(self.code)
    }
}

impl<E: Into<anyhow::Error>> From<E> for CliError {
    fn from(error: E) -> Self {
        CliError {
            code: 1,
            error: error.into(),
        }
    }
}

pub type CmdResult = Result<ExitCode, CliError>;

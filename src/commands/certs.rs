//! `flowerbed certs generate|inspect|verify`

use anyhow::Result;

use crate::cli::certs::CertsCommand;
use crate::error::Outcome;
use crate::output::Printer;

#[allow(clippy::needless_pass_by_value)]
pub fn run(command: CertsCommand, _printer: &Printer) -> Result<Outcome> {
    match command {
        CertsCommand::Generate(_) | CertsCommand::Inspect(_) | CertsCommand::Verify(_) => {
            anyhow::bail!("not implemented yet")
        }
    }
}

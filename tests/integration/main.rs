//! One integration test binary (links once); each area is a module.

mod certs;
mod cli;
mod deploy;
mod flower;
mod testenv;

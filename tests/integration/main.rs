//! One integration test binary (links once); each area is a module.

mod cli;
mod ownership;
mod testenv;

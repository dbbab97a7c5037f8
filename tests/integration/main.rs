//! One integration test binary (links once); each area is a module.

mod attacks;
mod bad_input;
mod bundle;
mod certs;
mod check;
mod cli;
mod deploy;
mod deploy_flwr;
mod flower;
mod journal;
mod journal_older;
mod journal_refusals;
mod orchestrators;
mod ownership;
mod roundtrip;
mod supernode_auth;
mod testenv;

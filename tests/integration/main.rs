//! One integration test binary (links once); each area is a module.

mod bad_input;
mod bounded_reads;
mod bundle;
mod certs;
mod certs_keys;
mod check;
mod cli;
mod deploy;
mod deploy_flwr;
mod flower;
mod orchestrators;
mod ownership;
mod roundtrip;
mod supernode_auth;
mod testenv;

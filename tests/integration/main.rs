//! One integration test binary (links once); each area is a module.

mod app_images;
mod attacks;
mod bad_input;
mod bounded_reads;
mod bundle;
mod certs;
mod certs_keys;
mod check;
mod check_fixes;
mod check_inputs;
mod check_matrix;
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

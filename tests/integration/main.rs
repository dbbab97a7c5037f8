//! One integration test binary (links once); each area is a module.

mod attacks;
mod bad_input;
mod bounded_reads;
mod bundle;
mod capabilities;
mod certs;
mod certs_keys;
mod certs_renew;
mod check;
mod check_fixes;
mod check_inputs;
mod check_matrix;
mod check_runtime_tls;
mod cli;
mod deploy;
mod deploy_flwr;
mod flower;
mod journal;
mod journal_older;
mod journal_refusals;
mod orchestrators;
mod ownership;
mod release_journals;
mod roundtrip;
mod supernode_auth;
mod testenv;

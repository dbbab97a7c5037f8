//! Writers over the deployment model: Compose YAML, a `docker run` script, the `flwr`
//! connection snippet, and the deployment's README.

pub mod compose;
pub mod flwr_config;
pub mod script;
pub mod text;

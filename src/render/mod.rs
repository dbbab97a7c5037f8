//! Writers over the deployment model: Compose YAML, a Swarm stack file, Kubernetes
//! manifests, a `docker run` script, the `flwr` connection snippet, and the deployment's
//! README.

pub mod compose;
pub mod flwr_config;
pub mod kubernetes;
pub mod script;
pub mod swarm;
pub mod text;

//! Where TLS files live in a deployment folder, and the names Flower's flags expect.
//!
//! Split layout (default): one folder per mount, so the CA key is never inside a folder
//! that a container mounts.
//! ```text
//! DIR/superlink-certificates/{ca.crt,server.pem,server.key}   -> superlink, read-only
//! DIR/supernode-certificates/ca.crt                          -> each supernode, read-only
//! DIR/ca/{ca.crt,ca.key}                                     -> stays on the host
//! DIR/supernode-runtime-certificates/supernode-N/{ca.crt,server.pem,server.key}
//!                                                            -> supernode-N, read-only
//! ```
//! The last is each supernode's own Runtime API server certificate (process isolation on
//! releases whose supernode serves that API over TLS), the same in both layouts. On the
//! CA's host the deployment's CA issues it. A supernode-only folder (another host, no CA
//! key) issues it from a CA of its own, which only that host's ClientApp runners trust:
//! ```text
//! DIR/runtime-ca/{ca.crt,ca.key}                             -> stays on the host
//! DIR/runner-certificates/ca.crt                             -> each ClientApp runner, read-only
//! ```
//! Flat layout (`--flat`): Flower's own script output in one folder:
//! `ca.crt ca.key server.csr server.key server.pem`.

use std::path::{Path, PathBuf};

pub const SUPERLINK_DIR: &str = "superlink-certificates";
pub const SUPERNODE_DIR: &str = "supernode-certificates";
pub const CA_DIR: &str = "ca";
pub const SUPERNODE_RUNTIME_DIR: &str = "supernode-runtime-certificates";
pub const RUNTIME_CA_DIR: &str = "runtime-ca";
pub const RUNNER_CA_DIR: &str = "runner-certificates";

pub const CA_CERT: &str = "ca.crt";
pub const CA_KEY: &str = "ca.key";
pub const SERVER_CERT: &str = "server.pem";
pub const SERVER_KEY: &str = "server.key";
pub const SERVER_CSR: &str = "server.csr";

/// Names every server certificate covers unless told otherwise: loopback (the superlink's
/// own subprocesses dial 127.0.0.1) and `superlink`, the service name our deployments use.
pub const DEFAULT_NAMES: [&str; 4] = ["localhost", "127.0.0.1", "::1", "superlink"];

/// Which of the two layouts a folder uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum LayoutKind {
    Split,
    Flat,
}

/// The paths of one deployment folder's TLS files.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Layout {
    pub kind: LayoutKind,
    pub root: PathBuf,
}

impl Layout {
    pub fn new(root: impl Into<PathBuf>, kind: LayoutKind) -> Self {
        Self {
            kind,
            root: root.into(),
        }
    }

    /// Find the layout of an existing folder, if it holds a server certificate.
    pub fn detect(root: &Path) -> Option<Self> {
        [LayoutKind::Split, LayoutKind::Flat]
            .into_iter()
            .map(|kind| Self::new(root, kind))
            .find(|layout| layout.server_cert().is_file())
    }

    /// The folder mounted read-only into the superlink.
    pub fn superlink_dir(&self) -> PathBuf {
        match self.kind {
            LayoutKind::Split => self.root.join(SUPERLINK_DIR),
            LayoutKind::Flat => self.root.clone(),
        }
    }

    /// The folder mounted read-only into each supernode (and superexec / flwr CLI).
    pub fn supernode_dir(&self) -> PathBuf {
        match self.kind {
            LayoutKind::Split => self.root.join(SUPERNODE_DIR),
            LayoutKind::Flat => self.root.clone(),
        }
    }

    /// The folder holding the CA key.
    pub fn ca_dir(&self) -> PathBuf {
        match self.kind {
            LayoutKind::Split => self.root.join(CA_DIR),
            LayoutKind::Flat => self.root.clone(),
        }
    }

    pub fn server_cert(&self) -> PathBuf {
        self.superlink_dir().join(SERVER_CERT)
    }

    pub fn server_key(&self) -> PathBuf {
        self.superlink_dir().join(SERVER_KEY)
    }

    /// The CA certificate beside the server certificate (what `--ssl-ca-certfile` names).
    pub fn superlink_ca_cert(&self) -> PathBuf {
        self.superlink_dir().join(CA_CERT)
    }

    /// The CA certificate the supernodes trust (what `--root-certificates` names).
    pub fn supernode_ca_cert(&self) -> PathBuf {
        self.supernode_dir().join(CA_CERT)
    }

    pub fn ca_cert(&self) -> PathBuf {
        self.ca_dir().join(CA_CERT)
    }

    pub fn ca_key(&self) -> PathBuf {
        self.ca_dir().join(CA_KEY)
    }

    /// Supernode `index`'s Runtime API server certificate folder (from 1), mounted into
    /// that supernode only.
    pub fn supernode_runtime_dir(&self, index: u32) -> PathBuf {
        self.root
            .join(SUPERNODE_RUNTIME_DIR)
            .join(format!("supernode-{index}"))
    }

    /// A supernode-only folder's own CA for the Runtime links (certificate and key).
    pub fn runtime_ca_dir(&self) -> PathBuf {
        self.root.join(RUNTIME_CA_DIR)
    }

    /// The folder of that CA's certificate alone, mounted into the ClientApp runners.
    pub fn runner_ca_dir(&self) -> PathBuf {
        self.root.join(RUNNER_CA_DIR)
    }

    pub fn server_csr(&self) -> PathBuf {
        self.root.join(SERVER_CSR)
    }
}

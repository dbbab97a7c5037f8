//! Which Flower component a container runs: the one kind every layer shares (the model's
//! services map onto it, `check` sorts containers by it, `docker` finds Flower's
//! containers and images by it).

/// A Flower component, when we can tell which one a container runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Component {
    Superlink,
    Supernode,
    Superexec,
    Serverapp,
    Clientapp,
}

impl Component {
    /// The component's name, as Flower's image repositories spell it (`flwr/superlink`).
    pub fn name(self) -> &'static str {
        match self {
            Component::Superlink => "superlink",
            Component::Supernode => "supernode",
            Component::Superexec => "superexec",
            Component::Serverapp => "serverapp",
            Component::Clientapp => "clientapp",
        }
    }

    /// Guess the component from an image name (`flwr/superlink:1.42.0`) or an entrypoint
    /// (`flower-superlink`).
    pub fn guess(text: &str) -> Option<Component> {
        let name = text.rsplit('/').next().unwrap_or(text);
        let name = name.split([':', '@']).next().unwrap_or(name);
        [
            ("superlink", Component::Superlink),
            ("supernode", Component::Supernode),
            ("superexec", Component::Superexec),
            ("serverapp", Component::Serverapp),
            ("server-app", Component::Serverapp),
            ("clientapp", Component::Clientapp),
            ("client-app", Component::Clientapp),
        ]
        .into_iter()
        .find(|(needle, _)| name.contains(needle))
        .map(|(_, component)| component)
    }
}

//! The commands and flags flowerbed tells its user about, spelled in one place: the code
//! that decides what must happen names the paths, names and identities (paths already
//! quoted as shell words); the words of the command line are this module's. It belongs to
//! the command-line layer with `cli/` and `config`, but depends on nothing, so the domain
//! can name a fix without an arrow back into the layer that calls it. Renaming a
//! subcommand or a flag is a change here and in the clap types, nowhere else in the code
//! (the templates spell commands in their text).

/// Flag spellings for messages and errors outside `cli/`.
pub mod flag {
    pub const ALLOW_HARDLINKS: &str = "--allow-hardlinks";
    pub const APP: &str = "--app";
    pub const CA_CERT: &str = "--ca-cert";
    pub const CA_KEY: &str = "--ca-key";
    pub const DAYS: &str = "--days";
    pub const FLOWER_VERSION: &str = "--flower-version";
    pub const FORCE: &str = "--force";
    pub const HELPER_IMAGE: &str = "--helper-image";
    pub const ID_SHIFT: &str = "--id-shift";
    pub const IMAGE_DIGEST: &str = "--image-digest";
    pub const INSECURE: &str = "--insecure";
    pub const JSON: &str = "--json";
    pub const KEY_TYPE: &str = "--key-type";
    pub const NAME: &str = "--name";
    pub const NAMESPACE: &str = "--namespace";
    pub const NO_WAIT: &str = "--no-wait";
    pub const OUT: &str = "--out";
    pub const PLATFORM: &str = "--platform";
    pub const PUBLIC_ADDRESS: &str = "--public-address";
    pub const PUSH_TO: &str = "--push-to";
    pub const PYTHON_VERSION: &str = "--python-version";
    pub const SKIP_CHANGED: &str = "--skip-changed";
    pub const SUPERLINK_ADDRESS: &str = "--superlink-address";
    pub const TO: &str = "--to";
    pub const VIA_DOCKER: &str = "--via-docker";
    pub const WORKDIR: &str = "--workdir";
}

/// `flowerbed WORDS...`.
fn flowerbed(words: &str) -> String {
    format!("flowerbed {words}")
}

/// `flowerbed quickstart DIR`.
pub fn quickstart(dir: &str) -> String {
    flowerbed(&format!("quickstart {dir}"))
}

/// `flowerbed quickstart DIR --supernode-auth`.
pub fn quickstart_with_auth(dir: &str) -> String {
    format!("{} --supernode-auth", quickstart(dir))
}

/// How a superlink deployment is made, for messages that need one.
pub fn quickstart_superlink() -> String {
    quickstart("DIR --role superlink --public-address HOST")
}

/// How a superlink deployment with supernode authentication is made.
pub fn quickstart_superlink_auth() -> String {
    quickstart("DIR --role superlink --supernode-auth")
}

/// `flowerbed quickstart --from-bundle FILE`.
pub fn from_bundle(file: &str) -> String {
    flowerbed(&format!("quickstart --from-bundle {file}"))
}

/// The quickstart command, named as what issues the runners' material.
pub fn quickstart_bare() -> String {
    flowerbed("quickstart")
}

/// `flowerbed bundle supernode`, bare.
pub fn bundle_supernode() -> String {
    flowerbed("bundle supernode")
}

/// `flowerbed bundle supernode DIR --out OUT`.
pub fn bundle_supernode_out(dir: &str, out: &str) -> String {
    format!("{} {dir} {} {out}", bundle_supernode(), flag::OUT)
}

/// `flowerbed supernodes admit`, bare.
pub fn supernodes_admit_bare() -> String {
    flowerbed("supernodes admit")
}

/// `flowerbed supernodes admit DIR KEYS`.
pub fn supernodes_admit(dir: &str, keys: &str) -> String {
    flowerbed(&format!("supernodes admit {dir} {keys}"))
}

/// `flowerbed certs generate`, bare.
pub fn certs_generate_bare() -> String {
    flowerbed("certs generate")
}

/// `flowerbed certs generate DIR`.
pub fn certs_generate(dir: &str) -> String {
    format!("{} {dir}", certs_generate_bare())
}

/// A new CA and certificate over the old: `flowerbed certs generate DIR [--flat] --force`
/// with the extra names.
pub fn certs_generate_new_ca(dir: &str, flat: bool, names: &[String]) -> String {
    let flat = if flat { " --flat" } else { "" };
    format!(
        "{}{flat} {}{}",
        certs_generate(dir),
        flag::FORCE,
        name_flags(names)
    )
}

/// `flowerbed certs renew DIR` with the extra names.
pub fn certs_renew(dir: &str, names: &[String]) -> String {
    format!(
        "{}{}",
        flowerbed(&format!("certs renew {dir}")),
        name_flags(names)
    )
}

/// `flowerbed certs verify DIR --name HOST`.
pub fn certs_verify_name(host: &str) -> String {
    flowerbed(&format!("certs verify DIR {} {host}", flag::NAME))
}

/// ` --name N` for each (already quoted) name.
fn name_flags(names: &[String]) -> String {
    names
        .iter()
        .flat_map(|name| [" ", flag::NAME, " ", name])
        .collect()
}

/// `flowerbed check DIR`.
pub fn check(dir: &str) -> String {
    flowerbed(&format!("check {dir}"))
}

/// `flowerbed check`, bare.
pub fn check_bare() -> String {
    flowerbed("check")
}

/// `check` run as root.
pub fn check_as_root() -> String {
    format!("sudo {}", flowerbed("check ..."))
}

/// `check --live NAME`, for a message that already says flowerbed.
pub fn check_live_name() -> String {
    "check --live NAME".to_string()
}

/// What to pass when flowerbed cannot ask an image for its Python.
pub fn python_of_image() -> String {
    format!("{} and {}", flag::PYTHON_VERSION, flag::PLATFORM)
}

/// `flowerbed wheels [DIR]`.
pub fn wheels(dir: Option<&str>) -> String {
    match dir {
        Some(dir) => flowerbed(&format!("wheels {dir}")),
        None => flowerbed("wheels"),
    }
}

/// `flowerbed render compose DIR --out FILE --force`.
pub fn render_compose(dir: &str, out: &str) -> String {
    flowerbed(&format!(
        "render compose {dir} {} {out} {}",
        flag::OUT,
        flag::FORCE
    ))
}

/// The other way a folder gets what quickstart generates: rendering with `--out`.
pub fn render_out() -> String {
    format!("render with {}", flag::OUT)
}

/// How a folder made by flowerbed was made, for a folder that is not one.
pub fn made_by() -> String {
    format!(
        "`{}` or `render FORMAT DIR {} FILE`",
        quickstart_bare(),
        flag::OUT
    )
}

/// `flowerbed render compose DIR --selinux`.
pub fn render_selinux() -> String {
    flowerbed("render compose DIR --selinux")
}

/// `flowerbed render compose DIR --supernode-auth`.
pub fn render_supernode_auth() -> String {
    flowerbed("render compose DIR --supernode-auth")
}

/// `sudo flowerbed undo PATH`.
pub fn undo(path: &str) -> String {
    format!("sudo {}", flowerbed(&format!("undo {path}")))
}

/// `flowerbed undo` (what puts a journal's folder back), bare.
pub fn undo_bare() -> String {
    flowerbed("undo")
}

/// `flowerbed undo PATH`, as a non-sudo sentence part.
pub fn undo_path(path: &str) -> String {
    flowerbed(&format!("undo {path}"))
}

/// `flowerbed journal list`.
pub fn journal_list() -> String {
    flowerbed("journal list")
}

/// `flowerbed journal prune`.
pub fn journal_prune() -> String {
    flowerbed("journal prune")
}

/// The ways this machine can change owners, for `doctor`: as root, through a helper
/// container, or with sudo.
pub fn own_ways(root: bool, docker: bool) -> String {
    if root {
        flowerbed("own PATH")
    } else if docker {
        format!(
            "{} (or sudo {})",
            flowerbed(&format!("own {} PATH", flag::VIA_DOCKER)),
            flowerbed("own PATH")
        )
    } else {
        format!("sudo {}", flowerbed("own PATH"))
    }
}

/// `sudo flowerbed own [--uid U --gid G] PATH...`, the IDs only when they are not Flower's
/// own (49999). `None` when a path cannot be one shell word (it holds a NUL).
pub fn own_command<'a>(uid: u32, gid: u32, paths: impl IntoIterator<Item = &'a str>) -> Option<String> {
    let mut words = vec!["sudo".to_string(), "flowerbed".into(), "own".into()];
    if (uid, gid) != (crate::FLOWER_UID, crate::FLOWER_GID) {
        words.extend(["--uid".into(), uid.to_string(), "--gid".into(), gid.to_string()]);
    }
    words.extend(paths.into_iter().map(str::to_string));
    shlex::try_join(words.iter().map(String::as_str)).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_appear_only_when_they_are_not_flowers() {
        assert_eq!(
            own_command(49_999, 49_999, ["/srv/a b"]).as_deref(),
            Some("sudo flowerbed own '/srv/a b'")
        );
        assert_eq!(
            own_command(1000, 1000, ["x", "y"]).as_deref(),
            Some("sudo flowerbed own --uid 1000 --gid 1000 x y")
        );
    }
}

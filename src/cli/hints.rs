//! The commands flowerbed tells its user to run, spelled in one place: the code that
//! decides what must happen names the paths and the identity; the command line is this
//! module's.

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

use std::os::unix::fs::MetadataExt;

use super::*;

#[test]
fn forged_paths_never_reach_outside_the_root() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("tree/a")).unwrap();
    let victim = dir.path().join("victim");
    std::fs::write(&victim, "host").unwrap();
    std::fs::set_permissions(&victim, std::fs::Permissions::from_mode(0o644)).unwrap();
    let before = std::fs::metadata(&victim).unwrap();
    let root = super::super::root::resolve(&dir.path().join("tree"), None).unwrap();
    let victim_path = victim.to_string_lossy().into_owned();
    for path in [
        &b"../victim"[..],
        b"a/../../victim",
        b"./../victim",
        victim_path.as_bytes(),
    ] {
        let record = Record {
            dev: before.dev(),
            ino: before.ino(),
            uid: 4321,
            gid: 4321,
            mode: SFlag::S_IFREG.bits() | 0o4755,
            path: path.to_vec(),
        };
        let mut locator = Locator::new(&root);
        assert!(!locator.listed_as_recorded(&record).unwrap());
        let mut report = WalkReport::default();
        restore_one(&mut locator, &record, &mut report, false).unwrap();
        assert_eq!(
            (report.changed, report.skipped),
            (0, 1),
            "{}",
            display_bytes(path)
        );
        let after = std::fs::metadata(&victim).unwrap();
        assert_eq!(
            (after.uid(), after.gid(), after.mode()),
            (before.uid(), before.gid(), before.mode())
        );
    }
}

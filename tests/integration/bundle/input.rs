//! Bundles that must be refused whole: hostile entries, unbounded names and headers,
//! private keys. Nothing is written for any of them.

use std::io::Read;
use std::process::Command as Process;

use super::{bundle, superlink};
use crate::testenv::{TestEnv, assert_bad_input, snapshot};

/// One raw entry: name, type, link target, contents.
type RawEntry<'a> = (&'a [u8], tar::EntryType, &'a [u8], &'a [u8]);

/// A gzip tar whose entries are written byte for byte as given, bypassing every check
/// the tar crate's builder would make.
fn hostile_archive(entries: &[RawEntry<'_>]) -> Vec<u8> {
    let encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    let mut builder = tar::Builder::new(encoder);
    for (name, kind, link, contents) in entries {
        let mut header = tar::Header::new_gnu();
        header.set_entry_type(*kind);
        header.set_mode(0o644);
        header.set_size(contents.len() as u64);
        {
            let old = header.as_old_mut();
            old.name[..name.len()].copy_from_slice(name);
            old.linkname[..link.len()].copy_from_slice(link);
        }
        header.set_cksum();
        builder.append(&header, *contents).unwrap();
    }
    builder.into_inner().unwrap().finish().unwrap()
}

#[test]
fn a_hostile_archive_is_refused_and_nothing_is_written() {
    let env = TestEnv::new();
    let elsewhere = tempfile::tempdir().unwrap();
    let outside = elsewhere.path().join("evil");
    let outside_bytes = outside.to_str().unwrap().as_bytes().to_vec();
    let target_bytes = elsewhere.path().to_str().unwrap().as_bytes().to_vec();
    let settings = br#"{"role": "supernode"}"#;
    let regular = tar::EntryType::Regular;
    let cases: Vec<(&str, Vec<u8>)> = vec![
        (
            "..",
            hostile_archive(&[
                (b"site/flowerbed.json", regular, b"", settings),
                (b"site/../evil", regular, b"", b"pwned"),
            ]),
        ),
        (
            "absolute",
            hostile_archive(&[
                (b"site/README.md", regular, b"", b"hi"),
                (&outside_bytes, regular, b"", b"pwned"),
            ]),
        ),
        (
            "symbolic link",
            hostile_archive(&[
                (b"site/link", tar::EntryType::Symlink, &target_bytes, b""),
                (b"site/link/evil", regular, b"", b"pwned"),
            ]),
        ),
        (
            "hard link",
            hostile_archive(&[(b"site/passwd", tar::EntryType::Link, b"/etc/passwd", b"")]),
        ),
        (
            "FIFO",
            hostile_archive(&[(b"site/pipe", tar::EntryType::Fifo, b"", b"")]),
        ),
        (
            "character device",
            hostile_archive(&[(b"site/null", tar::EntryType::Char, b"", b"")]),
        ),
        (
            "outside the bundle's folder",
            hostile_archive(&[
                (b"site/README.md", regular, b"", b"hi"),
                (b"other/evil", regular, b"", b"pwned"),
            ]),
        ),
    ];
    for (why, bytes) in &cases {
        let file = env.join("hostile.tar.gz");
        std::fs::write(&file, bytes).unwrap();
        for dir in [None, Some("target")] {
            let before = (env.snapshot(), snapshot(elsewhere.path()));
            let mut args = vec!["quickstart", "--from-bundle", "hostile.tar.gz"];
            args.extend(dir);
            let out = env.flowerbed(args).output().unwrap();
            assert_bad_input(&out, "refused");
            assert_bad_input(&out, why);
            assert_eq!(
                (env.snapshot(), snapshot(elsewhere.path())),
                before,
                "{why}: the disk changed"
            );
            assert!(!outside.exists() && !env.join("evil").exists());
        }
    }
}

/// A gzip tar whose first header is an extension header (`kind`: a GNU long name or a PAX
/// header) of `size` bytes read from `data`, streamed, then the regular entry it describes.
fn extension_archive(kind: tar::EntryType, data: impl Read, size: u64) -> Vec<u8> {
    let encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    let mut builder = tar::Builder::new(encoder);
    let mut header = tar::Header::new_gnu();
    header.set_entry_type(kind);
    header.as_old_mut().name[..13].copy_from_slice(b"././@LongLink");
    header.set_mode(0o644);
    header.set_size(size);
    header.set_cksum();
    builder.append(&header, data).unwrap();
    let mut header = tar::Header::new_gnu();
    header.set_entry_type(tar::EntryType::Regular);
    header.as_old_mut().name[..6].copy_from_slice(b"site/x");
    header.set_mode(0o644);
    header.set_size(1);
    header.set_cksum();
    builder.append(&header, &b"x"[..]).unwrap();
    builder.into_inner().unwrap().finish().unwrap()
}

/// Run flowerbed under python, which reports the child's peak RSS (KiB) on its last line.
fn with_peak_rss(env: &TestEnv, args: &[&str]) -> (std::process::Output, u64) {
    let script = "import resource, subprocess, sys\n\
                  code = subprocess.run(sys.argv[1:]).returncode\n\
                  print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)\n\
                  sys.exit(code)";
    let out = Process::new("python3")
        .args(["-c", script])
        .arg(assert_cmd::cargo::cargo_bin("flowerbed"))
        .args(args)
        .current_dir(env.path())
        .env("FLOWERBED_STATE_DIR", env.state.path())
        .env("NO_COLOR", "1")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let peak_kib = stdout.lines().last().unwrap().trim().parse().unwrap();
    (out, peak_kib)
}

#[test]
fn huge_long_names_and_pax_headers_are_refused_in_bounded_memory() {
    let env = TestEnv::new();
    // 256 MiB of name: unbounded, the reader held it (several times over) and printed it.
    let size = 256 << 20;
    for (kind, what) in [
        (tar::EntryType::GNULongName, "GNU long name"),
        (tar::EntryType::XHeader, "PAX header"),
    ] {
        let archive = extension_archive(kind, std::io::repeat(b'a').take(size), size);
        std::fs::write(env.join("huge.tar.gz"), archive).unwrap();
        let before = env.snapshot();
        let (out, peak_kib) = with_peak_rss(&env, &["quickstart", "--from-bundle", "huge.tar.gz", "node"]);
        assert_bad_input(&out, what);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            stderr.len() < 300,
            "{what}: a long error ({} bytes)",
            stderr.len()
        );
        assert!(peak_kib < 64 * 1024, "{what}: peak RSS {peak_kib} KiB");
        assert_eq!(env.snapshot(), before, "{what}: the disk changed");
    }
    // A long name within bounds is still read, and a bad one is shown only in part.
    let long = format!("site/{}/../x", "d".repeat(3000));
    let bytes = extension_archive(tar::EntryType::GNULongName, long.as_bytes(), long.len() as u64);
    std::fs::write(env.join("dots.tar.gz"), bytes).unwrap();
    let out = env
        .flowerbed(["quickstart", "--from-bundle", "dots.tar.gz", "node"])
        .output()
        .unwrap();
    assert_bad_input(&out, "'..'");
    assert!(out.stderr.len() < 300, "{}", String::from_utf8_lossy(&out.stderr));
}

#[test]
fn a_bundle_holding_a_private_key_is_refused_and_nothing_is_written() {
    let env = TestEnv::new();
    superlink(&env);
    let site = bundle(&env, &[]);
    let unpacked = flowerbed::bundle::read_archive(&std::fs::read(&site).unwrap()[..]).unwrap();
    let key = std::fs::read(env.join("link/superlink-certificates/server.key")).unwrap();
    for (path, contents) in [
        ("supernode-certificates/ca.key", key.clone()),
        ("notes.txt", [b"see below\n".as_slice(), &key].concat()),
    ] {
        let mut files: Vec<flowerbed::bundle::ArchiveFile> = unpacked
            .entries
            .iter()
            .filter_map(|(relative, entry)| match entry {
                flowerbed::bundle::Entry::File { contents, executable } => {
                    Some(flowerbed::bundle::ArchiveFile {
                        path: relative.clone(),
                        contents: contents.clone(),
                        executable: *executable,
                    })
                }
                flowerbed::bundle::Entry::Dir => None,
            })
            .collect();
        files.push(flowerbed::bundle::ArchiveFile {
            path: path.into(),
            contents,
            executable: false,
        });
        let bytes = flowerbed::bundle::write_archive(&unpacked.top, &files).unwrap();
        std::fs::write(env.join("keyed.tar.gz"), bytes).unwrap();
        for args in [
            &["quickstart", "--from-bundle", "keyed.tar.gz", "node"][..],
            &["quickstart", "--from-bundle", "keyed.tar.gz", "node", "--dry-run"],
            &["quickstart", "--from-bundle", "keyed.tar.gz"],
        ] {
            let before = env.snapshot();
            let out = env.flowerbed(args).output().unwrap();
            assert_bad_input(&out, &format!("{path} holds a private key"));
            assert_eq!(env.snapshot(), before, "{path}: the disk changed");
        }
    }
}

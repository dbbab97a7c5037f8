//! A supernode operator's bundle: a gzip tar with one top folder, written reproducibly and
//! read back defensively.
//!
//! Writing: entries are directories (0755) and regular files (0644, or 0755 for scripts),
//! owned by 0:0 with no user or group names and one fixed time, in sorted order, so the same
//! inputs give the same bytes. Reading: the whole archive is checked before anything is
//! written: only directories and regular files, relative paths without `..`, all under one
//! top folder, within size and count limits.

use std::collections::{BTreeMap, BTreeSet};
use std::io::Read;

use anyhow::{Context, Result, anyhow, bail};
use flate2::Compression;
use flate2::read::GzDecoder;
use serde::{Deserialize, Serialize};
use tar::{EntryType, Header};

/// What the superlink's server certificate covers, recorded in the bundle so `check` can
/// tell on the supernode's host whether the address it dials is covered, without the
/// server's key or certificate.
pub const METADATA_FILE: &str = "superlink-certificate.json";
/// Time every entry carries (2024-01-01T00:00:00Z): reproducible archives.
pub const ENTRY_MTIME: u64 = 1_704_067_200;
/// Mode of directories and scripts in the archive.
pub const MODE_EXECUTABLE: u32 = 0o755;
/// Mode of every other file.
pub const MODE_FILE: u32 = 0o644;
/// More entries than this is not a bundle.
const MAX_ENTRIES: usize = 256;
/// More unpacked bytes than this is not a bundle (a compression bomb, or the wrong file).
const MAX_UNPACKED_BYTES: u64 = 16 << 20;

/// The recorded facts about the superlink's server certificate.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct SuperlinkCertificate {
    /// DNS names and IP addresses the server certificate covers (its SANs).
    pub names: Vec<String>,
    /// SHA-256 of the server certificate (DER), to match it against the live one.
    pub server_certificate_sha256: String,
    /// SHA-256 of the CA certificate (DER) that issued it: the one in the bundle.
    pub ca_certificate_sha256: String,
    /// End of the server certificate's validity (RFC 3339).
    pub not_after: String,
}

impl SuperlinkCertificate {
    pub fn to_json(&self) -> String {
        let mut text = serde_json::to_string_pretty(self).expect("metadata serializes");
        text.push('\n');
        text
    }

    pub fn from_json(text: &str) -> Result<Self> {
        serde_json::from_str(text).map_err(|err| anyhow!("not a {METADATA_FILE} ({err})"))
    }
}

/// One file to put in an archive, by its path below the top folder.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ArchiveFile {
    pub path: String,
    pub contents: Vec<u8>,
    pub executable: bool,
}

fn header(kind: EntryType, mode: u32, size: u64) -> Header {
    let mut header = Header::new_ustar();
    header.set_entry_type(kind);
    header.set_mode(mode);
    header.set_uid(0);
    header.set_gid(0);
    header.set_mtime(ENTRY_MTIME);
    header.set_size(size);
    header
}

/// A gzip tar with `files` under the folder `top`, its parent folders listed first.
pub fn write_archive(top: &str, files: &[ArchiveFile]) -> Result<Vec<u8>> {
    let mut dirs = BTreeSet::from([top.to_string()]);
    for file in files {
        let mut parts: Vec<&str> = file.path.split('/').collect();
        parts.pop();
        for depth in 1..=parts.len() {
            dirs.insert(format!("{top}/{}", parts[..depth].join("/")));
        }
    }
    let mut sorted: Vec<&ArchiveFile> = files.iter().collect();
    sorted.sort_by(|a, b| a.path.cmp(&b.path));
    // No timestamp or file name in the gzip header either.
    let encoder = flate2::GzBuilder::new()
        .mtime(0)
        .write(Vec::new(), Compression::best());
    let mut builder = tar::Builder::new(encoder);
    for dir in &dirs {
        let mut entry = header(EntryType::Directory, MODE_EXECUTABLE, 0);
        builder
            .append_data(&mut entry, format!("{dir}/"), std::io::empty())
            .with_context(|| format!("{dir}: cannot add to the archive"))?;
    }
    for file in sorted {
        let mode = if file.executable {
            MODE_EXECUTABLE
        } else {
            MODE_FILE
        };
        let mut entry = header(EntryType::Regular, mode, file.contents.len() as u64);
        let path = format!("{top}/{}", file.path);
        builder
            .append_data(&mut entry, &path, file.contents.as_slice())
            .with_context(|| format!("{path}: cannot add to the archive"))?;
    }
    let encoder = builder.into_inner().context("cannot finish the archive")?;
    encoder.finish().context("cannot finish the archive")
}

/// One checked entry of an archive, its path relative to the top folder.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Entry {
    Dir,
    File { contents: Vec<u8>, executable: bool },
}

/// A checked archive: its top folder's name and every entry below it.
#[derive(Debug, Clone)]
pub struct Unpacked {
    pub top: String,
    /// Relative paths below `top` (`supernode-certificates/ca.crt`), sorted.
    pub entries: BTreeMap<String, Entry>,
}

impl Unpacked {
    /// The contents of a regular file, by its path below the top folder.
    pub fn file(&self, path: &str) -> Option<&[u8]> {
        match self.entries.get(path)? {
            Entry::File { contents, .. } => Some(contents),
            Entry::Dir => None,
        }
    }
}

/// The relative components of an entry's path, or why it is refused.
fn components(raw: &[u8]) -> Result<Vec<String>, &'static str> {
    let text = std::str::from_utf8(raw).map_err(|_| "its path is not UTF-8")?;
    if text.chars().any(char::is_control) {
        return Err("its path contains a control character");
    }
    if text.starts_with('/') {
        return Err("its path is absolute");
    }
    let mut parts = Vec::new();
    for part in text.split('/') {
        match part {
            "" | "." => {}
            ".." => return Err("its path contains '..'"),
            other => parts.push(other.to_string()),
        }
    }
    if parts.is_empty() {
        return Err("its path is empty");
    }
    Ok(parts)
}

fn type_name(kind: EntryType) -> &'static str {
    match kind {
        EntryType::Symlink => "a symbolic link",
        EntryType::Link => "a hard link",
        EntryType::Char => "a character device",
        EntryType::Block => "a block device",
        EntryType::Fifo => "a FIFO",
        _ => "neither a regular file nor a directory",
    }
}

/// Read and check a whole gzip tar in memory. Nothing is written anywhere.
pub fn read_archive(bytes: &[u8]) -> Result<Unpacked> {
    let mut archive = tar::Archive::new(GzDecoder::new(bytes));
    let mut top: Option<String> = None;
    let mut entries = BTreeMap::new();
    let mut unpacked_bytes: u64 = 0;
    for (index, entry) in archive
        .entries()
        .context("not a gzip-compressed tar archive")?
        .enumerate()
    {
        let mut entry = entry.context("not a gzip-compressed tar archive")?;
        if index >= MAX_ENTRIES {
            bail!("more than {MAX_ENTRIES} entries: not a flowerbed bundle");
        }
        let raw = entry.path_bytes().into_owned();
        let shown = String::from_utf8_lossy(&raw).escape_debug().to_string();
        let refuse = |why: &str| anyhow!("entry {shown:?} refused: {why}");
        let kind = entry.header().entry_type();
        if !matches!(kind, EntryType::Regular | EntryType::Directory) {
            return Err(refuse(&format!("it is {}", type_name(kind))));
        }
        let mut parts = components(&raw).map_err(&refuse)?;
        let first = parts.remove(0);
        match &top {
            None => top = Some(first),
            Some(name) if *name == first => {}
            Some(name) => return Err(refuse(&format!("it is outside the bundle's folder {name:?}"))),
        }
        let relative = parts.join("/");
        if relative.is_empty() {
            if kind == EntryType::Directory {
                continue;
            }
            return Err(refuse("a file where the bundle's folder should be"));
        }
        let value = if kind == EntryType::Directory {
            Entry::Dir
        } else {
            let size = entry.header().size().map_err(|_| refuse("unreadable size"))?;
            unpacked_bytes = unpacked_bytes.saturating_add(size);
            if unpacked_bytes > MAX_UNPACKED_BYTES {
                bail!("more than {MAX_UNPACKED_BYTES} bytes unpacked: not a flowerbed bundle");
            }
            let mut contents = Vec::new();
            (&mut entry)
                .take(size)
                .read_to_end(&mut contents)
                .map_err(|err| refuse(&format!("cannot read it ({err})")))?;
            let mode = entry.header().mode().unwrap_or(MODE_FILE);
            Entry::File {
                contents,
                executable: mode & 0o111 != 0,
            }
        };
        if entries.insert(relative, value).is_some() {
            return Err(refuse("it appears twice"));
        }
    }
    let top = top.ok_or_else(|| anyhow!("the archive is empty"))?;
    // A file cannot also be a folder that holds other entries.
    for path in entries.keys() {
        let mut parent = path.as_str();
        while let Some((up, _)) = parent.rsplit_once('/') {
            if matches!(entries.get(up), Some(Entry::File { .. })) {
                bail!("entry {up:?} refused: a file where a folder should be");
            }
            parent = up;
        }
    }
    Ok(Unpacked { top, entries })
}

/// Whether `bytes` hold a PEM private key of any kind (PKCS#8, SEC1, PKCS#1, encrypted).
pub fn holds_private_key(bytes: &[u8]) -> bool {
    String::from_utf8_lossy(bytes).contains("PRIVATE KEY-----")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn files() -> Vec<ArchiveFile> {
        vec![
            ArchiveFile {
                path: "run.sh".into(),
                contents: b"#!/bin/sh\n".to_vec(),
                executable: true,
            },
            ArchiveFile {
                path: "certs/ca.crt".into(),
                contents: b"ca".to_vec(),
                executable: false,
            },
        ]
    }

    #[test]
    fn round_trips_and_is_reproducible() {
        let bytes = write_archive("top", &files()).unwrap();
        assert_eq!(bytes, write_archive("top", &files()).unwrap());
        let unpacked = read_archive(&bytes).unwrap();
        assert_eq!(unpacked.top, "top");
        assert_eq!(
            unpacked.entries.keys().collect::<Vec<_>>(),
            ["certs", "certs/ca.crt", "run.sh"]
        );
        assert_eq!(unpacked.file("certs/ca.crt"), Some(&b"ca"[..]));
        assert_eq!(
            unpacked.entries["run.sh"],
            Entry::File {
                contents: b"#!/bin/sh\n".to_vec(),
                executable: true
            }
        );
    }

    #[test]
    fn refuses_paths_that_leave_the_folder() {
        assert!(components(b"a/../b").is_err());
        assert!(components(b"/etc/passwd").is_err());
        assert!(components(b"a/\nb").is_err());
        assert_eq!(components(b"./a//b/").unwrap(), ["a", "b"]);
    }

    #[test]
    fn spots_private_keys() {
        assert!(holds_private_key(b"-----BEGIN EC PRIVATE KEY-----\n"));
        assert!(holds_private_key(b"x\n-----BEGIN PRIVATE KEY-----"));
        assert!(!holds_private_key(b"-----BEGIN CERTIFICATE-----"));
    }
}

//! The bundle's archive format: a gzip tar with one top folder, written reproducibly and
//! read back defensively.
//!
//! Writing: entries are directories (0755) and regular files (0644, or 0755 for scripts),
//! owned by 0:0 with no user or group names and one fixed time, in sorted order, so the same
//! inputs give the same bytes. Reading: the whole archive is checked before anything is
//! written: only directories and regular files, relative paths without `..`, all under one
//! top folder, within size and count limits. The archive is read as a stream of raw tar
//! headers, so a GNU long name or a PAX header is bounded before a byte of it is read.

use std::collections::{BTreeMap, BTreeSet};
use std::io::Read;

use anyhow::{Context, Result, anyhow, bail};
use flate2::Compression;
use flate2::read::GzDecoder;
use tar::{EntryType, Header};

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
/// The longest entry name (a GNU long name, a PAX `path`): Linux's PATH_MAX.
const MAX_NAME_BYTES: u64 = 4096;
/// The largest PAX header: a path of PATH_MAX and a few short records.
const MAX_PAX_BYTES: u64 = 8192;
/// More headers than this (extension headers included) is not a bundle.
const MAX_HEADERS: usize = 4 * MAX_ENTRIES;
/// How many characters of a refused name an error shows.
const SHOWN_NAME_CHARS: usize = 64;
const NOT_A_TAR: &str = "not a gzip-compressed tar archive";

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

/// A refused name as an error shows it: escaped, and at most a short prefix of it.
fn shown(raw: &[u8]) -> String {
    let head = &raw[..raw.len().min(4 * SHOWN_NAME_CHARS)];
    let text = String::from_utf8_lossy(head).escape_debug().to_string();
    let out: String = text.chars().take(SHOWN_NAME_CHARS).collect();
    if out.len() < text.len() || head.len() < raw.len() {
        format!("{out}... ({} bytes)", raw.len())
    } else {
        out
    }
}

/// Read an extension header's data (a long name, PAX records) of at most `limit` bytes.
fn read_bounded(entry: &mut impl Read, size: u64, limit: u64, what: &str) -> Result<Vec<u8>> {
    if size > limit {
        bail!("{what} of {size} bytes (more than {limit}): not a flowerbed bundle");
    }
    let mut data = Vec::new();
    entry
        .take(size)
        .read_to_end(&mut data)
        .with_context(|| format!("cannot read {what}"))?;
    Ok(data)
}

/// The `path` a PAX header names, refusing records that would change how the archive is
/// laid out (`size`, sparse files).
fn pax_path(data: &[u8]) -> Result<Option<Vec<u8>>> {
    let mut path = None;
    for record in tar::PaxExtensions::new(data) {
        let record = record.map_err(|_| anyhow!("a malformed PAX header: not a flowerbed bundle"))?;
        let key = record
            .key()
            .map_err(|_| anyhow!("a PAX record whose key is not UTF-8: not a flowerbed bundle"))?;
        match key {
            "path" => path = Some(record.value_bytes().to_vec()),
            "size" => bail!("a PAX header that overrides an entry's size: not a flowerbed bundle"),
            key if key.starts_with("GNU.sparse") => bail!("a sparse file: not a flowerbed bundle"),
            _ => {}
        }
    }
    Ok(path)
}

/// The extension headers seen since the last entry: they describe the next one.
#[derive(Default)]
struct Pending {
    long_name: Option<Vec<u8>>,
    pax_path: Option<Vec<u8>>,
    pax: bool,
}

/// Read and check a whole gzip tar from `reader`, in bounded memory. Nothing is written
/// anywhere.
pub fn read_archive(reader: impl Read) -> Result<Unpacked> {
    let mut archive = tar::Archive::new(GzDecoder::new(reader));
    let mut top: Option<String> = None;
    let mut entries = BTreeMap::new();
    let mut unpacked_bytes: u64 = 0;
    let mut pending = Pending::default();
    let mut count = 0;
    for (headers, entry) in archive.entries().context(NOT_A_TAR)?.raw(true).enumerate() {
        let mut entry = entry.context(NOT_A_TAR)?;
        if headers >= MAX_HEADERS {
            bail!("more than {MAX_HEADERS} tar headers: not a flowerbed bundle");
        }
        let kind = entry.header().entry_type();
        let size = entry.header().entry_size().context(NOT_A_TAR)?;
        if kind.is_gnu_longname() {
            if pending.long_name.is_some() {
                bail!("two GNU long names for one entry: not a flowerbed bundle");
            }
            let mut name = read_bounded(&mut entry, size, MAX_NAME_BYTES, "a GNU long name")?;
            while name.last() == Some(&0) {
                name.pop();
            }
            pending.long_name = Some(name);
            continue;
        }
        if kind.is_pax_local_extensions() || kind.is_pax_global_extensions() {
            let data = read_bounded(&mut entry, size, MAX_PAX_BYTES, "a PAX header")?;
            let path = pax_path(&data)?;
            if kind.is_pax_local_extensions() {
                if pending.pax {
                    bail!("two PAX headers for one entry: not a flowerbed bundle");
                }
                pending.pax = true;
                pending.pax_path = path;
            } else if path.is_some() {
                bail!("a global PAX header that names a path: not a flowerbed bundle");
            }
            continue;
        }
        if kind.is_gnu_longlink() {
            bail!("a GNU long link name: links are not part of a flowerbed bundle");
        }
        count += 1;
        if count > MAX_ENTRIES {
            bail!("more than {MAX_ENTRIES} entries: not a flowerbed bundle");
        }
        let described = std::mem::take(&mut pending);
        let raw = match described.long_name.or(described.pax_path) {
            Some(name) => name,
            None => entry.path_bytes().into_owned(),
        };
        let shown = shown(&raw);
        let refuse = |why: &str| anyhow!("entry {shown:?} refused: {why}");
        if !matches!(kind, EntryType::Regular | EntryType::Directory) {
            return Err(refuse(&format!("it is {}", type_name(kind))));
        }
        if raw.len() as u64 > MAX_NAME_BYTES {
            return Err(refuse(&format!("its path is longer than {MAX_NAME_BYTES} bytes")));
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
    if pending.long_name.is_some() || pending.pax {
        bail!("a long name or PAX header with no entry after it: not a flowerbed bundle");
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
        let unpacked = read_archive(bytes.as_slice()).unwrap();
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

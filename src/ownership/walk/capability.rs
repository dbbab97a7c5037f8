//! File capabilities: `chown` clears a file's `security.capability` attribute, so `own`
//! journals it first (and `undo` puts it back); `release`, which keeps no journal, leaves
//! such a file alone.

use super::super::journal::MAX_CAPABILITY;
use super::super::report::SkipReason;

/// The extended attribute holding a file's capabilities.
pub(crate) const ATTRIBUTE: &str = "security.capability";

/// The capability attribute of the inode an `O_PATH` descriptor refers to.
pub(crate) fn read_fd(fd: i32) -> Result<Option<Vec<u8>>, SkipReason> {
    // An O_PATH descriptor has no xattr calls of its own; its /proc link names exactly
    // that inode.
    let link = format!("/proc/self/fd/{fd}");
    match xattr::get_deref(&link, ATTRIBUTE) {
        Ok(Some(value)) if value.is_empty() => Ok(None),
        Ok(Some(value)) if value.len() > MAX_CAPABILITY => Err(SkipReason::Error(format!(
            "its capability attribute is {} bytes, more than a journal keeps",
            value.len()
        ))),
        Ok(value) => Ok(value),
        // A filesystem without extended attributes has no capabilities either.
        Err(err) if err.raw_os_error() == Some(nix::libc::EOPNOTSUPP) => Ok(None),
        Err(err) => Err(SkipReason::Error(format!(
            "cannot read its capabilities (is /proc mounted?): {err}"
        ))),
    }
}

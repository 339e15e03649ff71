//! Where `GET_FILE` saves a file, decided and checked before a byte is
//! fetched.
//!
//! - No local name: the working directory, under the remote name's last path
//!   component.
//! - An existing directory: inside it, under that component (as `cp` does).
//! - Anything else names the file itself; its parent directory must exist,
//!   be a directory and be writable.

use std::io;
use std::path::{Path, PathBuf};

/// Why a destination cannot receive the file.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DestinationError {
    /// The folder the file would go in does not exist.
    #[error("the folder {} does not exist", .0.display())]
    NoFolder(PathBuf),
    /// The place the file would go in is not a folder.
    #[error("{} is not a folder", .0.display())]
    NotAFolder(PathBuf),
    /// The folder exists but a file cannot be created in it.
    #[error("cannot create a file in {}: {source}", .dir.display())]
    NotWritable {
        /// The folder.
        dir: PathBuf,
        /// Why.
        source: io::Error,
    },
    /// The remote name ends in nothing a file could be named after.
    #[error("the remote name {0:?} has no last part to name the file after: give a local name")]
    NoName(String),
    /// The destination is a folder (also after adding the remote name).
    #[error("{} is a folder", .0.display())]
    IsAFolder(PathBuf),
}

/// The remote name's last path component, when it can name a file.
fn last_component(remote: &str) -> Option<&str> {
    let last = remote.rsplit(['/', '\\']).next()?;
    (!last.is_empty() && last != "." && last != "..").then_some(last)
}

/// Where `GET_FILE OWNER REMOTE [LOCAL]` saves the file, checked: the folder
/// exists and accepts a new file; the result is not a folder. Blocking (a
/// few metadata calls and one unlinked temporary file).
///
/// # Errors
/// [`DestinationError`] says what is wrong, naming the paths as given.
pub fn resolve(local: Option<&Path>, remote: &str) -> Result<PathBuf, DestinationError> {
    let named = || {
        last_component(remote)
            .map(PathBuf::from)
            .ok_or_else(|| DestinationError::NoName(remote.to_owned()))
    };
    let dest = match local {
        None => named()?,
        Some(local) if local.is_dir() => local.join(named()?),
        Some(local) => local.to_path_buf(),
    };
    if dest.is_dir() {
        return Err(DestinationError::IsAFolder(dest));
    }
    let dir = match dest.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    match std::fs::metadata(&dir) {
        Ok(meta) if meta.is_dir() => {}
        Ok(_) => return Err(DestinationError::NotAFolder(dir)),
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            return Err(DestinationError::NoFolder(dir));
        }
        Err(source) => return Err(DestinationError::NotWritable { dir, source }),
    }
    // The one sure test of "may create a file here": create one (unlinked).
    if let Err(source) = tempfile::tempfile_in(&dir) {
        return Err(DestinationError::NotWritable { dir, source });
    }
    Ok(dest)
}

/// `dest` with its folder made absolute and symbolic links resolved, to
/// compare with the paths of published files; `None` when the folder cannot
/// be resolved.
pub fn canonical(dest: &Path) -> Option<PathBuf> {
    let dir = match dest.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    let name = dest.file_name()?;
    let full = std::fs::canonicalize(dir).ok()?.join(name);
    // A symbolic link at the destination is replaced, not written through.
    Some(full)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn folders_receive_the_remote_names_last_part() {
        let dir = tempfile::tempdir().unwrap();
        let sub = dir.path().join("sub");
        std::fs::create_dir(&sub).unwrap();
        assert_eq!(
            resolve(Some(&sub), "music/big.bin").unwrap(),
            sub.join("big.bin")
        );
        assert_eq!(
            resolve(Some(&sub.join("x.bin")), "big.bin").unwrap(),
            sub.join("x.bin")
        );
        assert_eq!(resolve(None, "a/b/c.txt").unwrap(), PathBuf::from("c.txt"));
        assert!(matches!(
            resolve(None, "a/.."),
            Err(DestinationError::NoName(_))
        ));
        assert!(matches!(
            resolve(Some(&sub), "dir/"),
            Err(DestinationError::NoName(_))
        ));
        // sub/inner is a folder: the file cannot take its place.
        std::fs::create_dir(sub.join("inner")).unwrap();
        assert!(matches!(
            resolve(Some(&sub), "inner"),
            Err(DestinationError::IsAFolder(_))
        ));
    }

    #[test]
    fn a_missing_or_unusable_folder_fails_at_once() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("nope/x.bin");
        assert!(matches!(
            resolve(Some(&missing), "x.bin"),
            Err(DestinationError::NoFolder(d)) if d == dir.path().join("nope")
        ));
        let file = dir.path().join("plain");
        std::fs::write(&file, b"x").unwrap();
        assert!(matches!(
            resolve(Some(&file.join("x.bin")), "x.bin"),
            Err(DestinationError::NotAFolder(_))
        ));
    }
}

//! Content-named folders written once: the page runner's scripts
//! (`.sluice/runner/<digest>/`) and the app template's snapshots
//! (`templates/.versions/<version>/`).
//!
//! Such a folder is complete or absent: its files are written to a staging
//! folder beside it, which is renamed into place in one step, and a folder
//! that exists is never rewritten (its name says what it holds). So two
//! commands running at once, or a command killed halfway, never leave a
//! half-written one for the next run to use.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

/// Writes `files` (relative path, contents) as the folder `dir` unless it
/// exists; returns whether this call wrote it. An error names the path.
pub(crate) fn write_folder_once(
    dir: &Path,
    files: &[(PathBuf, Vec<u8>)],
) -> Result<bool, (PathBuf, io::Error)> {
    if dir.is_dir() {
        return Ok(false);
    }
    let staging = dir.with_extension(format!("tmp{}", std::process::id()));
    let written = (|| {
        fs::create_dir_all(&staging).map_err(|e| (staging.clone(), e))?;
        for (relative, contents) in files {
            let path = staging.join(relative);
            if let Some(parent) = path.parent() {
                fs::create_dir_all(parent).map_err(|e| (parent.to_path_buf(), e))?;
            }
            fs::write(&path, contents).map_err(|e| (path.clone(), e))?;
        }
        Ok(())
    })();
    if let Err(error) = written {
        let _ = fs::remove_dir_all(&staging);
        return Err(error);
    }
    match fs::rename(&staging, dir) {
        Ok(()) => Ok(true),
        Err(error) => {
            let _ = fs::remove_dir_all(&staging);
            // Another run put the same folder there first.
            if dir.is_dir() {
                Ok(false)
            } else {
                Err((dir.to_path_buf(), error))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_once_and_never_rewrites() {
        let root = tempfile::tempdir().unwrap();
        let dir = root.path().join("abc");
        let files = [(PathBuf::from("sub/a.txt"), b"one".to_vec())];
        assert!(write_folder_once(&dir, &files).unwrap());
        let other = [(PathBuf::from("sub/a.txt"), b"two".to_vec())];
        assert!(!write_folder_once(&dir, &other).unwrap());
        assert_eq!(fs::read(dir.join("sub/a.txt")).unwrap(), b"one");
        // No staging folder is left behind.
        assert_eq!(fs::read_dir(root.path()).unwrap().count(), 1);
    }
}

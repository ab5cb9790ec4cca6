//! Opening the files a user names: artifacts and import files only when they are regular files;
//! small ones (the key file, a CA bundle) also from a pipe (`--api-key-file <(vault read ...)`).
//!
//! A leaf. Opening a named pipe blocks until something writes to it, and a directory, socket or
//! device is never an artifact: each is refused at once, named for what it is. The file is
//! opened without blocking and then checked (no gap between the check and the open). A
//! symbolic link to a regular file is fine.

use std::fs::{File, FileType, Metadata};
use std::io;
use std::path::Path;

/// What a path that is not a regular file is, for messages: "a directory", "a named pipe (FIFO)".
pub fn describe(kind: FileType) -> &'static str {
    #[cfg(unix)]
    {
        use std::os::unix::fs::FileTypeExt;
        if kind.is_fifo() {
            return "a named pipe (FIFO)";
        }
        if kind.is_socket() {
            return "a socket";
        }
        if kind.is_char_device() {
            return "a character device";
        }
        if kind.is_block_device() {
            return "a block device";
        }
    }
    if kind.is_dir() {
        "a directory"
    } else {
        "not a regular file"
    }
}

/// Why a path cannot be read as a file.
#[derive(Debug)]
pub enum OpenError {
    /// The path is there but is not a regular file; the text says what it is.
    NotRegular(&'static str),
    Io(io::Error),
}

/// The metadata of `path` (links followed), if it is a regular file.
pub fn regular(path: &Path) -> Result<Metadata, OpenError> {
    let metadata = std::fs::metadata(path).map_err(OpenError::Io)?;
    if metadata.is_file() {
        Ok(metadata)
    } else {
        Err(OpenError::NotRegular(describe(metadata.file_type())))
    }
}

/// Opens `path` for reading if it is a regular file; never blocks on a pipe.
pub fn open_regular(path: &Path) -> Result<File, OpenError> {
    let mut options = std::fs::OpenOptions::new();
    options.read(true);
    #[cfg(unix)]
    {
        // Opening a FIFO for reading blocks until a writer comes; without blocking it opens at
        // once, and the check below refuses it. Reads of a regular file ignore the flag.
        use std::os::unix::fs::OpenOptionsExt;
        options.custom_flags(libc::O_NONBLOCK);
    }
    let file = options
        .open(path)
        .map_err(|e| match std::fs::metadata(path) {
            // A socket cannot be opened at all (ENXIO): say what it is rather than why that failed.
            Ok(metadata) if !metadata.is_file() => {
                OpenError::NotRegular(describe(metadata.file_type()))
            }
            _ => OpenError::Io(e),
        })?;
    let metadata = file.metadata().map_err(OpenError::Io)?;
    if metadata.is_file() {
        Ok(file)
    } else {
        Err(OpenError::NotRegular(describe(metadata.file_type())))
    }
}

/// Reads a (small) regular file whole.
pub fn read_regular(path: &Path) -> Result<Vec<u8>, OpenError> {
    use io::Read;
    let mut bytes = Vec::new();
    open_regular(path)?
        .read_to_end(&mut bytes)
        .map_err(OpenError::Io)?;
    Ok(bytes)
}

/// Reads a small file given by the user (a key, a CA bundle) whole: a regular file, or a pipe
/// (process substitution, /dev/stdin); never a directory.
pub fn read_small(path: &Path) -> Result<Vec<u8>, OpenError> {
    if std::fs::metadata(path).map_err(OpenError::Io)?.is_dir() {
        return Err(OpenError::NotRegular("a directory"));
    }
    std::fs::read(path).map_err(OpenError::Io)
}

impl std::fmt::Display for OpenError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            OpenError::NotRegular(what) => write!(f, "it is {what}, not a regular file"),
            OpenError::Io(e) => write!(f, "{e}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_regular_files_open() {
        let dir = tempfile::tempdir().unwrap();
        assert!(matches!(
            open_regular(dir.path()),
            Err(OpenError::NotRegular("a directory"))
        ));
        let file = dir.path().join("f");
        std::fs::write(&file, b"x").unwrap();
        assert!(open_regular(&file).is_ok());
        assert!(matches!(
            open_regular(&dir.path().join("missing")),
            Err(OpenError::Io(e)) if e.kind() == io::ErrorKind::NotFound
        ));
    }
}

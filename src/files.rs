//! Opening the files a user names (artifacts, import files, the key file, a CA bundle) only when
//! they are regular files.
//!
//! A leaf. Opening a named pipe blocks until something writes to it, and a directory, socket or
//! device is never what the user meant: each is refused at once, named for what it is. A
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
    regular(path)?;
    File::open(path).map_err(OpenError::Io)
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

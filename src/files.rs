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
use std::time::{Duration, Instant};

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
    /// A small file went on beyond this many bytes.
    TooLarge(u64),
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

/// How long a pipe given as a small file may take to deliver it (`vault read` and the like).
const PIPE_DEADLINE: Duration = Duration::from_secs(60);

/// Reads a small file given by the user (a key, a certificate) whole, at most `max` bytes: a
/// regular file, or a pipe (process substitution, /dev/stdin). A directory, device or socket is
/// refused (`/dev/zero` is not read until memory runs out), a longer file is refused after
/// `max + 1` bytes, and a pipe with no writer reads as empty instead of blocking forever.
pub fn read_small(path: &Path, max: u64) -> Result<Vec<u8>, OpenError> {
    let kind = std::fs::metadata(path).map_err(OpenError::Io)?.file_type();
    #[cfg(unix)]
    let is_pipe = {
        use std::os::unix::fs::FileTypeExt;
        kind.is_fifo()
    };
    #[cfg(not(unix))]
    let is_pipe = false;
    if !kind.is_file() && !is_pipe {
        return Err(OpenError::NotRegular(describe(kind)));
    }
    let mut bytes = Vec::new();
    if is_pipe {
        read_pipe(path, max, &mut bytes)?;
    } else {
        use io::Read;
        open_regular(path)?
            .take(max + 1)
            .read_to_end(&mut bytes)
            .map_err(OpenError::Io)?;
    }
    if bytes.len() as u64 > max {
        return Err(OpenError::TooLarge(max));
    }
    Ok(bytes)
}

/// Reads a pipe opened without blocking (so a named pipe nobody writes to cannot hang the
/// open), waiting for its writer at most [`PIPE_DEADLINE`].
fn read_pipe(path: &Path, max: u64, bytes: &mut Vec<u8>) -> Result<(), OpenError> {
    use io::Read;
    let mut options = std::fs::OpenOptions::new();
    options.read(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.custom_flags(libc::O_NONBLOCK);
    }
    let mut pipe = options.open(path).map_err(OpenError::Io)?;
    let started = Instant::now();
    let mut chunk = [0u8; 4096];
    while bytes.len() as u64 <= max {
        match pipe.read(&mut chunk) {
            Ok(0) => break,
            Ok(n) => bytes.extend_from_slice(&chunk[..n]),
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                if started.elapsed() > PIPE_DEADLINE {
                    return Err(OpenError::Io(io::Error::new(
                        io::ErrorKind::TimedOut,
                        format!(
                            "the pipe delivered no end of file within {} s",
                            PIPE_DEADLINE.as_secs()
                        ),
                    )));
                }
                std::thread::sleep(Duration::from_millis(10));
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(OpenError::Io(e)),
        }
    }
    Ok(())
}

impl std::fmt::Display for OpenError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            OpenError::NotRegular(what) => write!(f, "it is {what}, not a regular file"),
            OpenError::TooLarge(max) => write!(
                f,
                "it holds more than {} KiB, far more than such a file does",
                max >> 10
            ),
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

    #[test]
    fn small_files_are_capped_and_devices_refused() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("key");
        std::fs::write(&file, b"0123456789").unwrap();
        assert_eq!(read_small(&file, 10).unwrap(), b"0123456789");
        assert!(matches!(read_small(&file, 9), Err(OpenError::TooLarge(9))));
        assert!(matches!(
            read_small(dir.path(), 10),
            Err(OpenError::NotRegular("a directory"))
        ));
        #[cfg(unix)]
        assert!(matches!(
            read_small(Path::new("/dev/zero"), 10),
            Err(OpenError::NotRegular("a character device"))
        ));
    }
}

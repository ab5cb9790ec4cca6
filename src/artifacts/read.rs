//! The streaming read of a pair: every byte validated as JSON on its way to a sink (the upload
//! body, a hash, nothing), with the test outcomes picked up in the same pass.
//!
//! The last chunk of each file is handed on only after the file has proven to be complete JSON of
//! the length it had when checked, so a reader downstream never receives a whole file that is not.
//! Reading runs one chunk ahead on its own thread; memory stays at a few chunks whatever the size.

use std::fs::File;
use std::io::{self, Read};
use std::path::Path;

use bytes::Bytes;

use super::outcomes::{ManifestVisitor, RunOutcome, RunResultsVisitor, Wanted};
use super::scan::{Scanner, Visitor};
use super::{ArtifactError, ArtifactFile, Pair, Role, inspect_pair};

/// Bytes read (and handed on) at a time. Measured with scripts/bench-upload on 2 cores: 1 MiB
/// uploads as fast as 2 MiB with half the memory, and clearly faster than 512 KiB or less
/// (fewer hand-offs between the reading, checking and sending threads).
pub const CHUNK: usize = 1024 * 1024;

/// The receiver went away (the request it fed was abandoned); reading stops.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stopped;

/// Why a streaming read ended early.
#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    #[error(transparent)]
    Artifact(#[from] ArtifactError),
    #[error("the receiver stopped reading")]
    Stopped,
}

impl From<Stopped> for ReadError {
    fn from(_: Stopped) -> Self {
        ReadError::Stopped
    }
}

/// Reads `file` once, validating it as it goes, and hands each chunk to `sink`. The last chunk is
/// handed on only after the whole file has proven to be complete JSON of the expected length.
fn stream_file<V: Visitor>(
    file: &ArtifactFile,
    visitor: V,
    sink: &mut dyn FnMut(Bytes) -> Result<(), Stopped>,
) -> Result<V, ReadError> {
    let path = || file.path.clone();
    let changed = |detail: String| ArtifactError::ChangedWhileReading {
        path: path(),
        detail,
    };
    let (reader, _) = super::inspect::open(file.role, &file.path)
        .map_err(|e| changed(format!("it can no longer be opened: {e}")))?;
    let pool = BufferPool::default();
    let chunks = Chunks {
        reader,
        expected: file.len,
        total: 0,
        pool: pool.clone(),
        done: false,
    };
    // The kernel's copy of the next chunk overlaps the validation of this one; with the check
    // and the read on one thread, that thread bounds the upload (docs/performance.md).
    std::thread::scope(|scope| {
        let (tx, read) = std::sync::mpsc::sync_channel(1);
        scope.spawn(move || {
            for chunk in chunks {
                if tx.send(chunk).is_err() {
                    break;
                }
            }
        });
        let mut scanner = Scanner::new(visitor);
        let mut held: Option<Bytes> = None;
        let mut total = 0u64;
        for chunk in read {
            let buf = chunk.map_err(|source| ArtifactError::Unreadable {
                path: path(),
                source,
            })?;
            total += buf.len() as u64;
            if total > file.len {
                let detail = format!("it grew past the {} bytes it had when checked", file.len);
                return Err(changed(detail).into());
            }
            scanner.feed(&buf).map_err(|error| ArtifactError::NotJson {
                path: path(),
                error,
            })?;
            if let Some(previous) = held.replace(pool.share(buf)) {
                sink(previous)?;
            }
        }
        if total != file.len {
            let detail = format!(
                "it had {} bytes when checked and {total} when read",
                file.len
            );
            return Err(changed(detail).into());
        }
        let visitor = scanner.finish().map_err(|error| ArtifactError::NotJson {
            path: path(),
            error,
        })?;
        if let Some(last) = held {
            sink(last)?;
        }
        Ok(visitor)
    })
}

/// A file's chunks, read with one system call each into pooled buffers: until the end, or one
/// byte past `expected` (to notice a file that grew).
struct Chunks {
    reader: File,
    expected: u64,
    total: u64,
    pool: BufferPool,
    done: bool,
}

impl Iterator for Chunks {
    type Item = io::Result<Vec<u8>>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.done {
            return None;
        }
        let want = (self.expected + 1)
            .saturating_sub(self.total)
            .min(CHUNK as u64) as usize;
        let mut buf = self.pool.take();
        let mut filled = 0;
        while filled < want {
            match self.reader.read(&mut buf[filled..want]) {
                Ok(0) => break,
                Ok(n) => filled += n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => {
                    self.done = true;
                    return Some(Err(e));
                }
            }
        }
        buf.truncate(filled);
        self.total += filled as u64;
        self.done = filled == 0 || self.total > self.expected;
        (filled > 0).then_some(Ok(buf))
    }
}

/// Chunk buffers that come back when the last [`Bytes`] pointing at them is dropped (after the
/// HTTP stack has written them), so a long upload reuses a few buffers instead of asking the
/// kernel for fresh, zeroed pages for every chunk.
#[derive(Default, Clone)]
struct BufferPool(std::sync::Arc<std::sync::Mutex<Vec<Vec<u8>>>>);

/// One pooled buffer, owned by the [`Bytes`] handed on.
struct Pooled {
    buf: Vec<u8>,
    pool: BufferPool,
}

impl AsRef<[u8]> for Pooled {
    fn as_ref(&self) -> &[u8] {
        &self.buf
    }
}

impl Drop for Pooled {
    fn drop(&mut self) {
        let mut buf = std::mem::take(&mut self.buf);
        // Back to full size; only a file's last, shorter chunk has a tail to fill.
        buf.resize(CHUNK, 0);
        if let Ok(mut free) = self.pool.0.lock()
            && free.len() < 16
        {
            free.push(buf);
        }
    }
}

impl BufferPool {
    /// A buffer of `CHUNK` bytes.
    fn take(&self) -> Vec<u8> {
        let reused = self.0.lock().ok().and_then(|mut free| free.pop());
        reused.unwrap_or_else(|| vec![0; CHUNK])
    }

    fn share(&self, buf: Vec<u8>) -> Bytes {
        Bytes::from_owner(Pooled {
            buf,
            pool: self.clone(),
        })
    }
}

/// What a streaming read of a pair hands on.
pub enum Piece {
    /// A file starts.
    Start(Role),
    Data(Bytes),
    /// The file ended and proved complete.
    End,
}

/// Reads the pair (run_results.json first), validating every byte, and returns the run's test
/// outcomes with each kept test's file and tested node filled in from the manifest.
pub fn read_pair(
    pair: &Pair,
    keep_passed: bool,
    sink: &mut dyn FnMut(Piece) -> Result<(), Stopped>,
) -> Result<RunOutcome, ReadError> {
    let changed_id =
        |file: &ArtifactFile, now: Option<String>| ArtifactError::ChangedWhileReading {
            path: file.path.clone(),
            detail: format!(
                "its invocation_id was {} when checked and is {} now",
                file.invocation_id(),
                now.as_deref().unwrap_or("missing")
            ),
        };
    let rr = &pair.run_results;
    sink(Piece::Start(Role::RunResults))?;
    let visitor = if keep_passed {
        RunResultsVisitor::keeping_passed()
    } else {
        RunResultsVisitor::new()
    };
    let mut run = stream_file(rr, visitor, &mut |b| sink(Piece::Data(b)))?.finish();
    if run.invocation_id.as_deref() != Some(rr.invocation_id()) {
        return Err(changed_id(rr, run.invocation_id).into());
    }
    sink(Piece::End)?;

    let m = &pair.manifest;
    sink(Piece::Start(Role::Manifest))?;
    let visitor = ManifestVisitor::new(Wanted(run.wanted_nodes()));
    let (manifest_id, facts, names) =
        stream_file(m, visitor, &mut |b| sink(Piece::Data(b)))?.finish();
    if manifest_id.as_deref() != Some(m.invocation_id()) {
        return Err(changed_id(m, manifest_id).into());
    }
    run.attach(&facts);
    run.names = names;
    sink(Piece::End)?;
    Ok(run)
}

/// [`read_pair`] for a reader that takes everything (to hash it, or nothing at all).
pub fn read_pair_locally(
    pair: &Pair,
    keep_passed: bool,
    mut see: impl FnMut(&Piece),
) -> Result<RunOutcome, ArtifactError> {
    read_pair(pair, keep_passed, &mut |piece| {
        see(&piece);
        Ok(())
    })
    .map_err(|e| match e {
        ReadError::Artifact(e) => e,
        ReadError::Stopped => unreachable!("this reader never stops"),
    })
}

/// Checks the pair at these paths and reads it whole without sending it anywhere.
pub fn check_pair(
    manifest: &Path,
    run_results: &Path,
) -> Result<(Pair, RunOutcome), ArtifactError> {
    let pair = inspect_pair(manifest, run_results)?;
    let run = read_pair_locally(&pair, false, |_| {})?;
    Ok((pair, run))
}

//! dbt artifacts on disk: checking that manifest.json and run_results.json are a complete,
//! matching pair, and reading them once, in chunks, for whoever sends or hashes the bytes.
//!
//! Owns the cheap checks done before anything is sent (the file exists, is not empty, ends like
//! a JSON object, starts with dbt's `metadata` block, is the right kind of artifact, and both files
//! carry one `invocation_id`), and the streaming read that validates every byte on its way out
//! while test outcomes are picked up. The last chunk of each file is held back until the file has
//! proven to be complete JSON, so a reader downstream never receives a whole file that is not.
//! It does not know about HTTP, multipart or where the target folder is.

pub mod metadata;
pub mod outcomes;
pub mod scan;

use std::fmt;
use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};

use bytes::Bytes;

pub use metadata::{Kind, Metadata};
pub use outcomes::{Level, RunOutcome, TestResult};
use outcomes::{ManifestVisitor, RunResultsVisitor, Wanted};
use scan::{Scanner, SyntaxError, Visitor};

/// Bytes read (and handed on) at a time. Measured with scripts/bench-upload on 2 cores: 1 MiB
/// uploads as fast as 2 MiB with half the memory, and clearly faster than 512 KiB or less
/// (fewer hand-offs between the reading, checking and sending threads).
pub const CHUNK: usize = 1024 * 1024;

/// Which of the pair a file plays.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    Manifest,
    RunResults,
}

impl Role {
    pub fn kind(self) -> Kind {
        match self {
            Role::Manifest => Kind::Manifest,
            Role::RunResults => Kind::RunResults,
        }
    }

    /// The multipart part name Secoda's upload endpoint expects.
    pub fn part_name(self) -> &'static str {
        match self {
            Role::Manifest => "manifest",
            Role::RunResults => "run_results",
        }
    }

    pub fn file_name(self) -> &'static str {
        match self {
            Role::Manifest => "manifest.json",
            Role::RunResults => "run_results.json",
        }
    }

    /// The flag that points at this file directly.
    fn flag(self) -> &'static str {
        match self {
            Role::Manifest => "--manifest",
            Role::RunResults => "--run-results",
        }
    }
}

/// A checked artifact: exists, ends like JSON, starts with a dbt metadata block of the right kind.
#[derive(Debug, Clone)]
pub struct ArtifactFile {
    pub role: Role,
    pub path: PathBuf,
    pub len: u64,
    pub metadata: Metadata,
    /// The schema version, e.g. `v12`.
    pub schema: String,
}

impl ArtifactFile {
    pub fn invocation_id(&self) -> &str {
        self.metadata.invocation_id.as_deref().unwrap_or_default()
    }
}

/// manifest.json and run_results.json from one dbt invocation.
#[derive(Debug, Clone)]
pub struct Pair {
    pub manifest: ArtifactFile,
    pub run_results: ArtifactFile,
}

impl Pair {
    pub fn invocation_id(&self) -> &str {
        self.manifest.invocation_id()
    }

    /// "target/manifest.json and target/run_results.json (dbt 1.12.6, invocation 87cd...)".
    pub fn describe(&self) -> String {
        format!(
            "{} and {} (dbt {}, invocation {})",
            self.manifest.path.display(),
            self.run_results.path.display(),
            self.run_results
                .metadata
                .dbt_version
                .as_deref()
                .unwrap_or("?"),
            self.invocation_id()
        )
    }

    pub fn files(&self) -> [&ArtifactFile; 2] {
        // Sent and read in this order: run_results first, since reading the manifest needs to
        // know which tests did not pass.
        [&self.run_results, &self.manifest]
    }
}

/// Why a file cannot be used. Every variant names the file; `hint` says what to do.
#[derive(Debug, thiserror::Error)]
pub enum ArtifactError {
    #[error("{} not found: {path}", role.file_name(), path = .path.display())]
    Missing { role: Role, path: PathBuf },
    #[error("cannot read {path}: {source}", path = .path.display())]
    Unreadable { path: PathBuf, source: io::Error },
    #[error("{path} is empty (0 bytes)", path = .path.display())]
    Empty { path: PathBuf },
    #[error("{path} is not complete JSON: {error}", path = .path.display())]
    NotJson { path: PathBuf, error: SyntaxError },
    #[error("{path} is truncated: it does not end with '}}' as a complete artifact does", path = .path.display())]
    Truncated { path: PathBuf },
    #[error("{path} is not a dbt artifact: {reason}", path = .path.display())]
    NotDbtArtifact { path: PathBuf, reason: String },
    #[error("{path} is {found}, not {expected} (its dbt_schema_version is {schema})", path = .path.display())]
    WrongKind {
        path: PathBuf,
        expected: Kind,
        found: Kind,
        schema: String,
    },
    #[error("{path} has no metadata.invocation_id, so it cannot be paired with the other artifact", path = .path.display())]
    NoInvocationId { path: PathBuf },
    #[error("{}", mismatch_message(.manifest, .run_results))]
    Mismatched {
        manifest: Box<ArtifactFile>,
        run_results: Box<ArtifactFile>,
    },
    #[error("{path} changed while it was being read ({detail})", path = .path.display())]
    ChangedWhileReading { path: PathBuf, detail: String },
}

impl ArtifactError {
    /// What the user can do about it.
    pub fn hint(&self) -> String {
        match self {
            ArtifactError::Missing { role, .. } => format!(
                "run dbt first (e.g. `dbt build`), or say where dbt wrote its artifacts with --target-dir, \
                 --project-dir or {}",
                role.flag()
            ),
            ArtifactError::Unreadable { .. } => "check the path and its permissions".into(),
            ArtifactError::Empty { .. }
            | ArtifactError::NotJson { .. }
            | ArtifactError::Truncated { .. }
            | ArtifactError::ChangedWhileReading { .. } => {
                "dbt rewrites artifacts in place; if a dbt command is still running, wait for it to finish \
                 and run again. Otherwise re-run the dbt command that wrote the file"
                    .into()
            }
            ArtifactError::NotDbtArtifact { .. } | ArtifactError::WrongKind { .. } => {
                "pass the manifest.json and run_results.json that dbt writes side by side in its target folder"
                    .into()
            }
            ArtifactError::NoInvocationId { .. } => {
                "upload artifacts as dbt wrote them; edited or generated files must keep metadata.invocation_id"
                    .into()
            }
            ArtifactError::Mismatched { manifest, run_results } => mismatch_hint(manifest, run_results),
        }
    }
}

fn mismatch_message(manifest: &ArtifactFile, run_results: &ArtifactFile) -> String {
    let describe = |f: &ArtifactFile| {
        format!(
            "{:<17} invocation {} generated {}",
            f.role.file_name(),
            f.invocation_id(),
            f.metadata.generated_at.as_deref().unwrap_or("(unknown)")
        )
    };
    format!(
        "{} and {} come from different dbt invocations:\n  {}\n  {}",
        manifest.path.display(),
        run_results.path.display(),
        describe(manifest),
        describe(run_results)
    )
}

fn mismatch_hint(manifest: &ArtifactFile, run_results: &ArtifactFile) -> String {
    let stamp = |f: &ArtifactFile| {
        f.metadata
            .generated_at
            .clone()
            .unwrap_or_default()
            .replace("+00:00", "Z")
    };
    if stamp(manifest) > stamp(run_results) {
        "manifest.json is newer: a later `dbt parse`, `dbt ls`, `dbt compile`, `dbt run-operation` or \
         `dbt source freshness` rewrote it after the run, or a dbt run is still in progress (dbt writes \
         manifest.json when it starts and run_results.json when it ends). Upload right after the command \
         whose results you want, or run that command again"
            .into()
    } else {
        "run_results.json is newer than manifest.json: the manifest may come from a cache or an earlier \
         build. Upload the pair written by one dbt command"
            .into()
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.file_name())
    }
}

fn open(role: Role, path: &Path) -> Result<File, ArtifactError> {
    File::open(path).map_err(|source| match source.kind() {
        io::ErrorKind::NotFound => ArtifactError::Missing {
            role,
            path: path.to_path_buf(),
        },
        _ => ArtifactError::Unreadable {
            path: path.to_path_buf(),
            source,
        },
    })
}

/// Checks one file cheaply: its first bytes and its last, never the middle.
pub fn inspect(role: Role, path: &Path) -> Result<ArtifactFile, ArtifactError> {
    let unreadable = |source| ArtifactError::Unreadable {
        path: path.to_path_buf(),
        source,
    };
    let mut file = open(role, path)?;
    let len = file.metadata().map_err(unreadable)?.len();
    if len == 0 {
        return Err(ArtifactError::Empty {
            path: path.to_path_buf(),
        });
    }
    // A file cut short by a reader racing dbt's write ends mid-value: the last non-blank byte of a
    // complete artifact is the top-level object's '}'.
    let tail_len = len.min(64);
    file.seek(SeekFrom::Start(len - tail_len))
        .map_err(unreadable)?;
    let mut tail = vec![0; tail_len as usize];
    file.read_exact(&mut tail).map_err(unreadable)?;
    let last = tail.iter().rev().find(|b| !b.is_ascii_whitespace());
    file.seek(SeekFrom::Start(0)).map_err(unreadable)?;
    let prefix = metadata::read_prefix(&mut file).map_err(unreadable)?;
    let not_dbt = |reason: &str| ArtifactError::NotDbtArtifact {
        path: path.to_path_buf(),
        reason: reason.into(),
    };
    let meta = match prefix {
        metadata::Prefix::Found(meta) => meta,
        metadata::Prefix::NotJson(error) if error.kind == scan::SyntaxErrorKind::Empty => {
            return Err(ArtifactError::Empty {
                path: path.to_path_buf(),
            });
        }
        metadata::Prefix::NotJson(error) => {
            return Err(ArtifactError::NotJson {
                path: path.to_path_buf(),
                error,
            });
        }
        metadata::Prefix::NotFirst => {
            return Err(not_dbt("it does not start with dbt's \"metadata\" block"));
        }
        metadata::Prefix::Incomplete => {
            return Err(ArtifactError::Truncated {
                path: path.to_path_buf(),
            });
        }
    };
    if last != Some(&b'}') {
        return Err(ArtifactError::Truncated {
            path: path.to_path_buf(),
        });
    }
    let schema_url = meta.dbt_schema_version.clone().unwrap_or_default();
    let Some((kind, schema)) = meta.kind() else {
        return Err(not_dbt(&format!(
            "metadata.dbt_schema_version is {}, not a https://schemas.getdbt.com/dbt/... URL",
            if schema_url.is_empty() {
                "missing".to_string()
            } else {
                format!("{schema_url:?}")
            }
        )));
    };
    if kind != role.kind() {
        return Err(ArtifactError::WrongKind {
            path: path.to_path_buf(),
            expected: role.kind(),
            found: kind,
            schema: schema_url,
        });
    }
    if meta.invocation_id.as_deref().is_none_or(str::is_empty) {
        return Err(ArtifactError::NoInvocationId {
            path: path.to_path_buf(),
        });
    }
    Ok(ArtifactFile {
        role,
        path: path.to_path_buf(),
        len,
        metadata: meta,
        schema,
    })
}

/// Checks both files and that they come from one dbt invocation.
pub fn inspect_pair(manifest: &Path, run_results: &Path) -> Result<Pair, ArtifactError> {
    let manifest = inspect(Role::Manifest, manifest)?;
    let run_results = inspect(Role::RunResults, run_results)?;
    if manifest.invocation_id() != run_results.invocation_id() {
        return Err(ArtifactError::Mismatched {
            manifest: Box::new(manifest),
            run_results: Box::new(run_results),
        });
    }
    Ok(Pair {
        manifest,
        run_results,
    })
}

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
pub fn stream_file<V: Visitor>(
    file: &ArtifactFile,
    visitor: V,
    sink: &mut dyn FnMut(Bytes) -> Result<(), Stopped>,
) -> Result<V, ReadError> {
    let path = || file.path.clone();
    let changed = |detail: String| ArtifactError::ChangedWhileReading {
        path: path(),
        detail,
    };
    let reader =
        File::open(&file.path).map_err(|e| changed(format!("it can no longer be opened: {e}")))?;
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
    End(Role),
}

/// Reads the pair (run_results.json first), validating every byte, and returns the run's test
/// outcomes with each kept test's file and tested node filled in from the manifest.
pub fn read_pair(
    pair: &Pair,
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
    let mut run =
        stream_file(rr, RunResultsVisitor::new(), &mut |b| sink(Piece::Data(b)))?.finish();
    if run.invocation_id.as_deref() != Some(rr.invocation_id()) {
        return Err(changed_id(rr, run.invocation_id).into());
    }
    sink(Piece::End(Role::RunResults))?;

    let m = &pair.manifest;
    sink(Piece::Start(Role::Manifest))?;
    let visitor = ManifestVisitor::new(Wanted::Only(run.wanted_nodes()));
    let (manifest_id, facts) = stream_file(m, visitor, &mut |b| sink(Piece::Data(b)))?.finish();
    if manifest_id.as_deref() != Some(m.invocation_id()) {
        return Err(changed_id(m, manifest_id).into());
    }
    run.attach(&facts);
    sink(Piece::End(Role::Manifest))?;
    Ok(run)
}

/// [`read_pair`] for a reader that takes everything (to hash it, or nothing at all).
pub fn read_pair_locally(
    pair: &Pair,
    mut see: impl FnMut(&Piece),
) -> Result<RunOutcome, ArtifactError> {
    read_pair(pair, &mut |piece| {
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
    let run = read_pair_locally(&pair, |_| {})?;
    Ok((pair, run))
}

/// Decodes a raw JSON string body (escapes included) into text.
pub fn unescape(raw: &[u8]) -> String {
    let mut text = String::new();
    unescape_into(raw, &mut text);
    text
}

/// Like [`unescape`], into `out` (cleared first), reusing its allocation.
pub fn unescape_into(raw: &[u8], out: &mut String) {
    out.clear();
    if !raw.contains(&b'\\')
        && let Ok(text) = std::str::from_utf8(raw)
    {
        out.push_str(text);
        return;
    }
    let mut quoted = Vec::with_capacity(raw.len() + 2);
    quoted.push(b'"');
    quoted.extend_from_slice(raw);
    quoted.push(b'"');
    out.push_str(
        &serde_json::from_slice::<String>(&quoted)
            .unwrap_or_else(|_| String::from_utf8_lossy(raw).into_owned()),
    );
}

//! The peer's state directory: what a peer keeps between runs.
//!
//! ```text
//! STATE_DIR/                       --state-dir, P2P_STATE_DIR, $XDG_STATE_HOME/p2p-peer,
//!                                  or ~/.local/state/p2p-peer
//!   HOST-PORT/                     one directory server (names escaped, see `escape_name`)
//!     USER/                        one user of that server
//!       digests                    size, mtime and BLAKE3 of each file the user published
//!       library                    each name the user published here and its local path
//!       connected                  while this peer is connected as the user: `PID PORT`
//!   history                        the shell's command history (rustyline's format)
//! ```
//!
//! Each file but `history` is plain text written atomically (temporary file, fsync, rename,
//! fsync of the directory), so a crash leaves the old version or the new one, never a mix.
//!
//! `library` holds one line per published name, `NAME<TAB>PATH` (`PATH` absolute; in both,
//! `%`, tab, `\n` and `\r` are written as `%25`, `%09`, `%0A`, `%0D`), after a first line
//! `# p2p-peer library v1`.
//!
//! `digests` holds one line per published file:
//! `blake3:HEX SIZE MTIME_NS PATH` (single spaces; `PATH` is the rest of the line, absolute,
//! with `%`, `\n` and `\r` written as `%25`, `%0A`, `%0D`), after a first line
//! `# p2p-peer digests v1`. Lines that do not parse are skipped with a warning.

use std::collections::{BTreeMap, HashMap};
use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{SystemTime, UNIX_EPOCH};

use p2p_proto::field::UserName;
use p2p_proto::transfer::Digest;

/// The environment variable that names the state directory.
pub const STATE_DIR_ENV: &str = "P2P_STATE_DIR";

/// The first line of a `digests` file.
const DIGESTS_HEADER: &str = "# p2p-peer digests v1";

/// The file name of the digest records in a user's directory.
pub const DIGESTS_FILE: &str = "digests";

/// The file name of the published library in a user's directory.
pub const LIBRARY_FILE: &str = "library";

/// The file name of the "connected" marker in a user's directory.
pub const CONNECTED_FILE: &str = "connected";

/// The file name of the shell history in the state directory's root.
pub const HISTORY_FILE: &str = "history";

/// The first line of a `library` file.
const LIBRARY_HEADER: &str = "# p2p-peer library v1";

/// At most this many names are read from a `library` file (the directory server's own limit on
/// publications is far lower).
pub const MAX_LIBRARY_ENTRIES: usize = 100_000;

/// Bytes read per call while hashing.
const HASH_CHUNK: usize = 1 << 20;

/// At most this many digest records are kept per user; past it, records of files that no
/// longer exist are dropped first, then the file is not persisted further (it stays in memory).
pub const MAX_DIGEST_RECORDS: usize = 100_000;

/// The default state directory: `$XDG_STATE_HOME/p2p-peer`, else
/// `$HOME/.local/state/p2p-peer`; `None` when neither variable is set.
pub fn default_state_dir() -> Option<PathBuf> {
    if let Some(xdg) = std::env::var_os("XDG_STATE_HOME").filter(|v| !v.is_empty()) {
        return Some(PathBuf::from(xdg).join("p2p-peer"));
    }
    std::env::var_os("HOME")
        .filter(|v| !v.is_empty())
        .map(|home| PathBuf::from(home).join(".local/state/p2p-peer"))
}

/// A peer's state directory.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StateDir {
    root: PathBuf,
}

impl StateDir {
    /// The state directory at `root` (created when something is first written).
    pub fn new(root: impl Into<PathBuf>) -> Self {
        Self { root: root.into() }
    }

    /// Its root.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The directory of `user` on the directory server `host`:`port`.
    pub fn user_dir(&self, host: &str, port: u16, user: &UserName) -> PathBuf {
        self.root
            .join(format!("{}-{port}", escape_name(host)))
            .join(escape_name(user.as_str()))
    }
}

/// A name safe as one path component: ASCII letters, digits, `.`, `_` and `-` stay; every
/// other byte is `%XX`; a name made only of dots gets them escaped too.
fn escape_name(name: &str) -> String {
    let all_dots = name.bytes().all(|b| b == b'.');
    let mut out = String::with_capacity(name.len());
    for b in name.bytes() {
        if b.is_ascii_alphanumeric() || b == b'_' || b == b'-' || (b == b'.' && !all_dots) {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// What a published file looked like when it was hashed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Record {
    size: u64,
    mtime_ns: i128,
    digest: Digest,
}

/// The digests of a user's published files, keyed by absolute path, kept in memory and (when
/// it has a path) in the `digests` file. Cloning shares the same records.
#[derive(Clone, Debug, Default)]
pub struct DigestCache {
    inner: Arc<Inner>,
}

#[derive(Debug, Default)]
struct Inner {
    file: Option<PathBuf>,
    records: Mutex<HashMap<PathBuf, Record>>,
    /// Held while a snapshot is taken and written, so the last write holds the newest records.
    save: Mutex<()>,
}

/// Where a digest came from, for the log and the tests.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DigestSource {
    /// The record matched the file's size and modification time.
    Recorded,
    /// The file was read and hashed now.
    Hashed,
}

impl DigestCache {
    /// A cache that is never written to disk.
    pub fn in_memory() -> Self {
        Self::default()
    }

    /// The cache kept in `file`, with the records it holds now (a missing file is an empty
    /// cache). Blocking.
    ///
    /// # Errors
    /// A read error other than "not found".
    pub fn load(file: PathBuf) -> io::Result<Self> {
        let records = match std::fs::read_to_string(&file) {
            Ok(text) => parse_digests(&text, &file),
            Err(e) if e.kind() == io::ErrorKind::NotFound => HashMap::new(),
            Err(e) => return Err(e),
        };
        Ok(Self {
            inner: Arc::new(Inner {
                file: Some(file),
                records: Mutex::new(records),
                save: Mutex::new(()),
            }),
        })
    }

    /// The digest and size of the file at `path`, from the record when its size and
    /// modification time still match, else hashed now (and recorded). Blocking.
    ///
    /// # Errors
    /// The file cannot be opened or read, or is not a regular file.
    pub fn digest_of(&self, path: &Path) -> io::Result<(Digest, u64, DigestSource)> {
        let mut file = File::open(path)?;
        self.digest_of_open(path, &mut file)
    }

    /// Like [`Self::digest_of`] for a file already open (the one about to be served); its read
    /// position is left at the end when it was hashed. Blocking.
    ///
    /// # Errors
    /// As [`Self::digest_of`].
    pub fn digest_of_open(
        &self,
        path: &Path,
        file: &mut File,
    ) -> io::Result<(Digest, u64, DigestSource)> {
        let meta = file.metadata()?;
        if !meta.is_file() {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "not a regular file",
            ));
        }
        let size = meta.len();
        let mtime_ns = mtime_ns(meta.modified()?);
        if let Some(record) = self.records().get(path)
            && record.size == size
            && record.mtime_ns == mtime_ns
        {
            return Ok((record.digest, size, DigestSource::Recorded));
        }
        file.seek(SeekFrom::Start(0))?;
        let (digest, hashed) = hash_reader(file)?;
        if hashed != size {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "the file changed size while it was hashed",
            ));
        }
        tracing::debug!(path = %path.display(), size, %digest, "file hashed");
        let record = Record {
            size,
            mtime_ns,
            digest,
        };
        self.records().insert(path.to_path_buf(), record);
        if let Err(e) = self.save() {
            tracing::warn!(error = %e, "cannot write the digests to the state directory");
        }
        Ok((digest, size, DigestSource::Hashed))
    }

    fn records(&self) -> std::sync::MutexGuard<'_, HashMap<PathBuf, Record>> {
        self.inner
            .records
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// Writes every record to the cache's file, atomically.
    fn save(&self) -> io::Result<()> {
        let Some(path) = &self.inner.file else {
            return Ok(());
        };
        let _saving = self
            .inner
            .save
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let text = {
            let mut records = self.records();
            if records.len() > MAX_DIGEST_RECORDS {
                records.retain(|path, _| path.exists());
            }
            if records.len() > MAX_DIGEST_RECORDS {
                return Ok(());
            }
            format_digests(&records)
        };
        write_atomically(path, text.as_bytes())
    }
}

/// What a user published through this peer, name → absolute local path, kept in the
/// `library` file (rewritten atomically on every change) when it has one.
#[derive(Debug, Default)]
pub struct Publications {
    file: Option<PathBuf>,
    entries: BTreeMap<String, PathBuf>,
}

impl Publications {
    /// Publications that are never written to disk.
    pub fn in_memory() -> Self {
        Self::default()
    }

    /// The publications kept in `file` (a missing file is none). Blocking.
    ///
    /// # Errors
    /// A read error other than "not found".
    pub fn load(file: PathBuf) -> io::Result<Self> {
        let entries = match std::fs::read_to_string(&file) {
            Ok(text) => parse_library(&text, &file),
            Err(e) if e.kind() == io::ErrorKind::NotFound => BTreeMap::new(),
            Err(e) => return Err(e),
        };
        Ok(Self {
            file: Some(file),
            entries,
        })
    }

    /// Every published name and its local path, by name.
    pub fn entries(&self) -> impl Iterator<Item = (&str, &Path)> {
        self.entries.iter().map(|(n, p)| (n.as_str(), p.as_path()))
    }

    /// Whether `path` is the local file of a published name.
    pub fn publishes_path(&self, path: &Path) -> bool {
        self.entries.values().any(|p| p == path)
    }

    /// Records `name` as published from `path` and saves. Blocking.
    ///
    /// # Errors
    /// The file cannot be written (the record stays in memory).
    pub fn insert(&mut self, name: &str, path: PathBuf) -> io::Result<()> {
        self.entries.insert(name.to_owned(), path);
        self.save()
    }

    /// Forgets `name` and saves. Blocking.
    ///
    /// # Errors
    /// As [`Self::insert`].
    pub fn remove(&mut self, name: &str) -> io::Result<()> {
        if self.entries.remove(name).is_some() {
            self.save()?;
        }
        Ok(())
    }

    /// Forgets every name and removes the file. Blocking.
    ///
    /// # Errors
    /// The file exists and cannot be removed.
    pub fn clear(&mut self) -> io::Result<()> {
        self.entries.clear();
        match &self.file {
            Some(file) => match std::fs::remove_file(file) {
                Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e),
                _ => Ok(()),
            },
            None => Ok(()),
        }
    }

    fn save(&self) -> io::Result<()> {
        let Some(file) = &self.file else {
            return Ok(());
        };
        let mut text = format!("{LIBRARY_HEADER}\n");
        for (name, path) in &self.entries {
            // A path that is not UTF-8 stays in memory only.
            let Some(path) = path.to_str() else {
                tracing::warn!(%name, "a local path that is not UTF-8 is not kept in the state directory");
                continue;
            };
            text.push_str(&escape_field(name));
            text.push('\t');
            text.push_str(&escape_field(path));
            text.push('\n');
        }
        write_atomically(file, text.as_bytes())
    }
}

/// Which process of this peer is connected as a user: written at CONNECT, removed at
/// DISCONNECT. A marker left by a process that no longer runs means that peer stopped without
/// DISCONNECT (killed, crashed), and the directory still lists the user as connected.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ConnectedMarker {
    /// The peer's process id.
    pub pid: u32,
    /// Its transfer listener's port.
    pub port: u16,
}

impl ConnectedMarker {
    /// The marker in `file`, if there is one that parses. Blocking.
    pub fn read(file: &Path) -> Option<Self> {
        let text = std::fs::read_to_string(file).ok()?;
        let (pid, port) = text.trim().split_once(' ')?;
        Some(Self {
            pid: pid.parse().ok()?,
            port: port.parse().ok()?,
        })
    }

    /// Writes the marker to `file`, atomically. Blocking.
    ///
    /// # Errors
    /// Any file-system error.
    pub fn write(&self, file: &Path) -> io::Result<()> {
        write_atomically(file, format!("{} {}\n", self.pid, self.port).as_bytes())
    }

    /// Removes the marker in `file`, if any. Blocking.
    pub fn remove(file: &Path) {
        let _ = std::fs::remove_file(file);
    }

    /// Whether the process that wrote it has gone (known on Linux only; elsewhere `false`).
    pub fn process_gone(&self) -> bool {
        if cfg!(target_os = "linux") {
            self.pid != std::process::id() && !Path::new(&format!("/proc/{}", self.pid)).exists()
        } else {
            false
        }
    }
}

fn escape_field(s: &str) -> String {
    s.replace('%', "%25")
        .replace('\t', "%09")
        .replace('\n', "%0A")
        .replace('\r', "%0D")
}

fn unescape_field(s: &str) -> String {
    s.replace("%0D", "\r")
        .replace("%0A", "\n")
        .replace("%09", "\t")
        .replace("%25", "%")
}

fn parse_library(text: &str, file: &Path) -> BTreeMap<String, PathBuf> {
    let mut entries = BTreeMap::new();
    for (n, line) in text.lines().enumerate() {
        if n == 0 && line == LIBRARY_HEADER {
            continue;
        }
        let parsed = line.split_once('\t').and_then(|(name, path)| {
            let path = PathBuf::from(unescape_field(path));
            (!name.is_empty() && path.is_absolute()).then(|| (unescape_field(name), path))
        });
        match parsed {
            Some((name, path)) => {
                entries.insert(name, path);
            }
            None => tracing::warn!(file = %file.display(), line = n + 1, "library line skipped"),
        }
        if entries.len() >= MAX_LIBRARY_ENTRIES {
            break;
        }
    }
    entries
}

/// Hashes everything `reader` yields; returns the digest and the byte count.
///
/// # Errors
/// A read error.
pub fn hash_reader(reader: &mut impl Read) -> io::Result<(Digest, u64)> {
    let mut hasher = blake3::Hasher::new();
    let total = feed_hasher(&mut hasher, reader)?;
    Ok((digest_of_hasher(&hasher), total))
}

/// Feeds everything `reader` yields to `hasher`, [`HASH_CHUNK`] bytes at a
/// time; returns the byte count.
///
/// # Errors
/// A read error.
pub(crate) fn feed_hasher(hasher: &mut blake3::Hasher, reader: &mut impl Read) -> io::Result<u64> {
    let mut buf = vec![0u8; HASH_CHUNK];
    let mut total = 0u64;
    loop {
        let n = match reader.read(&mut buf) {
            Ok(0) => return Ok(total),
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        hasher.update(&buf[..n]);
        total += n as u64;
    }
}

/// The protocol's digest of what `hasher` has seen.
pub fn digest_of_hasher(hasher: &blake3::Hasher) -> Digest {
    Digest::from_bytes(*hasher.finalize().as_bytes())
}

fn mtime_ns(time: SystemTime) -> i128 {
    match time.duration_since(UNIX_EPOCH) {
        Ok(after) => i128::try_from(after.as_nanos()).unwrap_or(i128::MAX),
        Err(before) => -i128::try_from(before.duration().as_nanos()).unwrap_or(i128::MAX),
    }
}

fn format_digests(records: &HashMap<PathBuf, Record>) -> String {
    let mut lines: Vec<String> = records
        .iter()
        .filter_map(|(path, r)| {
            // A path that is not UTF-8 stays in memory only.
            let path = path.to_str()?;
            let path = path
                .replace('%', "%25")
                .replace('\n', "%0A")
                .replace('\r', "%0D");
            Some(format!("{} {} {} {path}\n", r.digest, r.size, r.mtime_ns))
        })
        .collect();
    lines.sort_unstable();
    let mut text = format!("{DIGESTS_HEADER}\n");
    text.extend(lines);
    text
}

fn parse_digests(text: &str, file: &Path) -> HashMap<PathBuf, Record> {
    let mut records = HashMap::new();
    for (n, line) in text.lines().enumerate() {
        if n == 0 && line == DIGESTS_HEADER {
            continue;
        }
        match parse_record(line) {
            Some((path, record)) => {
                records.insert(path, record);
            }
            None => tracing::warn!(file = %file.display(), line = n + 1, "digest record skipped"),
        }
        if records.len() >= MAX_DIGEST_RECORDS {
            break;
        }
    }
    records
}

fn parse_record(line: &str) -> Option<(PathBuf, Record)> {
    let mut fields = line.splitn(4, ' ');
    let digest = fields.next()?.parse().ok()?;
    let size = fields.next()?.parse().ok()?;
    let mtime_ns = fields.next()?.parse().ok()?;
    let path = fields.next()?;
    let path = path
        .replace("%0A", "\n")
        .replace("%0D", "\r")
        .replace("%25", "%");
    let path = PathBuf::from(path);
    path.is_absolute().then_some((
        path,
        Record {
            size,
            mtime_ns,
            digest,
        },
    ))
}

/// Replaces `path` with `bytes`: a temporary file beside it, fsync, rename, fsync of the
/// directory. Creates the directories on the way.
///
/// # Errors
/// Any file-system error; `path` then still holds its previous content.
pub fn write_atomically(path: &Path, bytes: &[u8]) -> io::Result<()> {
    replace_file(path, bytes, true)
}

/// Replaces `path` with `bytes` through a temporary file and a rename; with
/// `durable`, fsyncs the file and the directory too ([`write_atomically`]).
///
/// # Errors
/// Any file-system error; `path` then still holds its previous content.
pub fn replace_file(path: &Path, bytes: &[u8], durable: bool) -> io::Result<()> {
    let dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir)?;
    let mut temp = tempfile::Builder::new().prefix(".tmp-").tempfile_in(dir)?;
    temp.write_all(bytes)?;
    if durable {
        temp.as_file().sync_all()?;
    }
    temp.persist(path).map_err(|e| e.error)?;
    // The rename itself is durable only once the directory is.
    if durable {
        File::open(dir)?.sync_all()?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_one_safe_component() {
        assert_eq!(escape_name("127.0.0.1"), "127.0.0.1");
        assert_eq!(escape_name("::1"), "%3A%3A1");
        assert_eq!(escape_name(".."), "%2E%2E");
        assert_eq!(escape_name("a/b c"), "a%2Fb%20c");
        let state = StateDir::new("/s");
        assert_eq!(
            state.user_dir("localhost", 5000, &"alice".parse().unwrap()),
            PathBuf::from("/s/localhost-5000/alice")
        );
    }

    #[test]
    fn records_survive_a_reload_and_a_change_is_hashed_again() {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("odd name %0A\nx.bin");
        std::fs::write(&data, b"hello").unwrap();
        let state = dir.path().join("state/digests");

        let cache = DigestCache::load(state.clone()).unwrap();
        let (digest, size, source) = cache.digest_of(&data).unwrap();
        assert_eq!(size, 5);
        assert_eq!(source, DigestSource::Hashed);
        assert_eq!(digest.as_bytes(), blake3::hash(b"hello").as_bytes());
        assert_eq!(cache.digest_of(&data).unwrap().2, DigestSource::Recorded);

        let text = std::fs::read_to_string(&state).unwrap();
        assert!(text.starts_with(DIGESTS_HEADER), "{text}");
        assert_eq!(text.lines().count(), 2, "{text}");

        // A restart reads the record and does not hash again.
        let reloaded = DigestCache::load(state.clone()).unwrap();
        assert_eq!(
            reloaded.digest_of(&data).unwrap(),
            (digest, 5, DigestSource::Recorded)
        );

        // Same size, another mtime: hashed again.
        std::fs::write(&data, b"HELLO").unwrap();
        let file = File::options().write(true).open(&data).unwrap();
        file.set_modified(UNIX_EPOCH + std::time::Duration::from_secs(1_000_000))
            .unwrap();
        let (changed, _, source) = reloaded.digest_of(&data).unwrap();
        assert_eq!(source, DigestSource::Hashed);
        assert_ne!(changed, digest);
    }

    #[test]
    fn publications_survive_a_reload_and_are_forgotten() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("u/library");
        let mut lib = Publications::load(file.clone()).unwrap();
        assert_eq!(lib.entries().count(), 0);
        lib.insert("my file.txt", PathBuf::from("/data/my file.txt"))
            .unwrap();
        lib.insert("odd%\tname", PathBuf::from("/data/odd\n%09"))
            .unwrap();
        lib.insert("gone", PathBuf::from("/data/gone")).unwrap();
        lib.remove("gone").unwrap();
        let reloaded = Publications::load(file.clone()).unwrap();
        let entries: Vec<_> = reloaded.entries().collect();
        assert_eq!(
            entries,
            [
                ("my file.txt", Path::new("/data/my file.txt")),
                ("odd%\tname", Path::new("/data/odd\n%09")),
            ]
        );
        assert!(reloaded.publishes_path(Path::new("/data/my file.txt")));
        // No temporary file is left beside it.
        let names: Vec<_> = std::fs::read_dir(dir.path().join("u")).unwrap().collect();
        assert_eq!(names.len(), 1);
        let mut reloaded = reloaded;
        reloaded.clear().unwrap();
        assert!(!file.exists());
        // Bad lines are skipped, good ones kept.
        std::fs::write(
            &file,
            format!("{LIBRARY_HEADER}\nno tab\na\trelative\nb\t/b\n"),
        )
        .unwrap();
        let entries: Vec<_> = Publications::load(file)
            .unwrap()
            .entries()
            .map(|(n, _)| n.to_owned())
            .collect();
        assert_eq!(entries, ["b"]);
    }

    #[test]
    fn connected_marker_round_trip_and_liveness() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("u/connected");
        assert_eq!(ConnectedMarker::read(&file), None);
        let me = ConnectedMarker {
            pid: std::process::id(),
            port: 4242,
        };
        me.write(&file).unwrap();
        assert_eq!(ConnectedMarker::read(&file), Some(me));
        assert!(!me.process_gone());
        // A process that ran and was reaped.
        let mut child = std::process::Command::new("true").spawn().unwrap();
        let pid = child.id();
        child.wait().unwrap();
        let gone = ConnectedMarker { pid, port: 1 };
        assert_eq!(gone.process_gone(), cfg!(target_os = "linux"));
        ConnectedMarker::remove(&file);
        assert!(!file.exists());
        std::fs::write(&file, "garbage").unwrap();
        assert_eq!(ConnectedMarker::read(&file), None);
    }

    #[test]
    fn bad_lines_are_skipped() {
        let good = format!("{} 5 12 /a b", Digest::from_bytes([1; 32]));
        let text = format!("{DIGESTS_HEADER}\n{good}\nnonsense\nblake3:00 1 2 /x\n{good}x\n");
        let records = parse_digests(&text, Path::new("digests"));
        assert_eq!(records.len(), 2);
        assert_eq!(records[Path::new("/a b")].size, 5);
        assert!(parse_record(&format!("{} 5 12 relative", Digest::from_bytes([1; 32]))).is_none());
    }
}

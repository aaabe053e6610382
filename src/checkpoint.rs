//! The checkpoint: tracker state and every sink's unacknowledged points, in one file written
//! atomically (temporary file, fsync, rename, fsync of the directory), so that a restart
//! continues with nothing lost and nothing counted twice.

use std::collections::BTreeMap;
use std::io::Write as _;
use std::path::{Path, PathBuf};

use anyhow::Context as _;
use atomic_write_file::AtomicWriteFile;
use serde::{Deserialize, Serialize};
use std::os::unix::fs::OpenOptionsExt as _;
use tailship_collector::TrackerState;
use tailship_model::Timestamp;
use tailship_sink::{DriverState, StateView};

/// Bumped when the file's meaning changes; another format is moved aside, never misread.
pub const FORMAT: u32 = 1;

/// The checkpoint's write buffer (8 KiB, the default, was a write call per 8 KiB).
const WRITE_BUFFER: usize = 64 * 1024;

/// What the file holds.
#[derive(Debug, Deserialize)]
pub struct Checkpoint {
    pub format: u32,
    /// The source it was made from: a checkpoint of another source is foreign.
    pub source: String,
    pub written_at: Timestamp,
    pub tracker: TrackerState,
    pub sinks: BTreeMap<String, DriverState>,
}

/// The same, borrowed, for writing without copying the tracker state.
#[derive(Serialize)]
pub struct CheckpointRef<'a> {
    pub format: u32,
    pub source: &'a str,
    pub written_at: Timestamp,
    pub tracker: &'a TrackerState,
    pub sinks: BTreeMap<&'a str, StateView<'a>>,
}

/// The checkpoint file.
#[derive(Debug, Clone)]
pub struct Store {
    path: PathBuf,
}

impl Store {
    pub fn new(path: impl Into<PathBuf>) -> Self {
        Self { path: path.into() }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Reads the checkpoint of `source`. `None` when there is none, or when the file is
    /// corrupt, truncated, of another format or of another source: such a file is moved
    /// aside with a warning (tailship starts afresh rather than crash-looping on it).
    pub fn load(&self, source: &str) -> Option<Checkpoint> {
        let bytes = match std::fs::read(&self.path) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return None,
            Err(e) => {
                tracing::error!(path = %self.path.display(), error = %e, "cannot read the checkpoint; starting afresh");
                return None;
            }
        };
        let problem = match serde_json::from_slice::<Checkpoint>(&bytes) {
            Ok(c) if c.format != FORMAT => format!("format {} is not {FORMAT}", c.format),
            Ok(c) if c.source != source => {
                format!("it belongs to source {:?}, not {source:?}", c.source)
            }
            Ok(c) => return Some(c),
            Err(e) => format!("it cannot be read: {e}"),
        };
        self.move_aside(&problem);
        None
    }

    fn move_aside(&self, problem: &str) {
        let mut aside = self.path.clone().into_os_string();
        aside.push(format!(".rejected-{}", Timestamp::now().as_millis() / 1000));
        match std::fs::rename(&self.path, &aside) {
            Ok(()) => tracing::warn!(
                path = %self.path.display(),
                moved_to = %Path::new(&aside).display(),
                "checkpoint not used: {problem}; moved aside, starting afresh (the first scrape is a baseline)"
            ),
            Err(e) => tracing::error!(
                path = %self.path.display(),
                error = %e,
                "checkpoint not used: {problem}; it could not be moved aside and will be overwritten"
            ),
        }
    }

    /// Writes the checkpoint atomically, readable by its owner only.
    pub fn save(&self, checkpoint: &CheckpointRef<'_>) -> anyhow::Result<()> {
        let mut options = AtomicWriteFile::options();
        options.mode(0o600);
        let mut file = options
            .open(&self.path)
            .with_context(|| format!("opening {} for the checkpoint", self.path.display()))?;
        // Large writes: at 10k series a checkpoint is megabytes.
        let mut writer = std::io::BufWriter::with_capacity(WRITE_BUFFER, &mut file);
        serde_json::to_writer(&mut writer, checkpoint)
            .map_err(std::io::Error::from)
            .and_then(|()| writer.flush())
            .with_context(|| {
                format!(
                    "writing the checkpoint {} (is its file system full, or over a file size limit?)",
                    self.path.display()
                )
            })?;
        drop(writer);
        file.commit()
            .with_context(|| format!("writing the checkpoint {}", self.path.display()))
    }

    /// Makes sure the checkpoint can be written: its directory exists (it is created) and
    /// accepts a file. Used at start-up and by `tailship check`.
    pub fn ensure_writable(&self) -> anyhow::Result<()> {
        let dir = self
            .path
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
            .unwrap_or(Path::new("."));
        std::fs::create_dir_all(dir).with_context(|| {
            format!("creating {} for the checkpoint (set [state] path or TAILSHIP_STATE_PATH to a writable place)", dir.display())
        })?;
        let probe = AtomicWriteFile::options().open(&self.path).with_context(|| {
            format!("cannot write the checkpoint {} (set [state] path or TAILSHIP_STATE_PATH to a writable place)", self.path.display())
        })?;
        probe.discard()?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn temp() -> PathBuf {
        let dir = std::env::temp_dir().join(format!(
            "tailship-cp-{}-{}",
            std::process::id(),
            Timestamp::now().as_millis()
        ));
        std::fs::create_dir_all(&dir).unwrap();
        dir.join("state.json")
    }

    fn write(store: &Store, source: &str) {
        let tracker = TrackerState::default();
        let cp = CheckpointRef {
            format: FORMAT,
            source,
            written_at: Timestamp::from_millis(5),
            tracker: &tracker,
            sinks: BTreeMap::new(),
        };
        store.save(&cp).unwrap();
    }

    #[test]
    fn round_trip_with_owner_only_permissions() {
        use std::os::unix::fs::PermissionsExt as _;
        let store = Store::new(temp());
        store.ensure_writable().unwrap();
        assert!(store.load("unix:/s").is_none(), "nothing yet");
        write(&store, "unix:/s");
        let cp = store.load("unix:/s").unwrap();
        assert_eq!(cp.written_at, Timestamp::from_millis(5));
        let mode = std::fs::metadata(store.path())
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
    }

    fn aside_files(store: &Store) -> usize {
        let dir = store.path().parent().unwrap();
        std::fs::read_dir(dir)
            .unwrap()
            .filter(|e| {
                e.as_ref()
                    .unwrap()
                    .file_name()
                    .to_string_lossy()
                    .contains(".rejected-")
            })
            .count()
    }

    #[test]
    fn corrupt_truncated_and_foreign_checkpoints_are_moved_aside() {
        for (i, damage) in ["{not json", "", "truncate", "foreign", "format"]
            .iter()
            .enumerate()
        {
            let store = Store::new(temp().with_file_name(format!("state{i}.json")));
            write(&store, "unix:/s");
            let text = std::fs::read_to_string(store.path()).unwrap();
            let bad = match *damage {
                "truncate" => text[..text.len() / 2].to_owned(),
                "foreign" => text.replace("unix:/s", "http://elsewhere/metrics"),
                "format" => text.replace("\"format\":1", "\"format\":99"),
                other => other.to_owned(),
            };
            std::fs::write(store.path(), bad).unwrap();
            let before = aside_files(&store);
            assert!(store.load("unix:/s").is_none(), "{damage}");
            assert!(!store.path().exists(), "{damage}: moved away");
            assert_eq!(aside_files(&store), before + 1, "{damage}");
        }
    }

    #[test]
    fn an_unwritable_place_is_named() {
        let store = Store::new("/proc/tailship/state.json");
        let err = format!("{:#}", store.ensure_writable().unwrap_err());
        assert!(
            err.contains("/proc/tailship") && err.contains("TAILSHIP_STATE_PATH"),
            "{err}"
        );
    }
}

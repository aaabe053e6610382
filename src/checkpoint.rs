//! The checkpoint: tracker state and every sink's unacknowledged points, in one file written
//! atomically (temporary file, fsync, rename, fsync of the directory), so that a restart
//! continues with nothing lost and nothing counted twice.
//!
//! The file is [`MAGIC`] followed by the checkpoint in postcard, a compact binary serde
//! format: at 10k series it is a third of the JSON's size and a fraction of its cost to
//! write (docs/PERFORMANCE.md). Each sink's series that the tracker also holds is written as
//! its number among the tracker's published series ([`FORMAT`] 3), not its name and labels
//! once per sink more. `tailship state` prints it as JSON, every series in full. Checkpoints
//! of earlier versions (format 1, JSON; format 2, postcard with every series in full) are
//! read, and replaced at the next write.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::Context as _;
use atomic_write_file::AtomicWriteFile;
use serde::{Deserialize, Serialize};
use std::os::unix::fs::OpenOptionsExt as _;
use tailship_collector::TrackerState;
use tailship_model::Timestamp;
use tailship_sink::{DriverState, NamedDriverState, StateView};

/// Bumped when the file's meaning changes; another format is moved aside, never misread.
/// Format 1 was JSON; 2 postcard after [`MAGIC`]; 3 the same with the sinks' series named by
/// number.
pub const FORMAT: u32 = 3;

/// The postcard format of earlier versions, every sink's series in full, still read.
const FULL_NAMES_FORMAT: u32 = 2;

/// The format of the JSON checkpoints of earlier versions, still read.
const JSON_FORMAT: u32 = 1;

/// The first bytes of a checkpoint file: what it is, for `file` and for people.
pub const MAGIC: &[u8] = b"tailship checkpoint\n";

/// The checkpoint's write buffer (8 KiB, the default, was a write call per 8 KiB).
const WRITE_BUFFER: usize = 64 * 1024;

/// What the file holds, every series in full (as format 2 wrote it, and as `tailship state`
/// prints it).
#[derive(Debug, Serialize, Deserialize)]
pub struct Checkpoint {
    pub format: u32,
    /// The source it was made from: a checkpoint of another source is foreign.
    pub source: String,
    pub written_at: Timestamp,
    pub tracker: TrackerState,
    pub sinks: BTreeMap<String, DriverState>,
}

/// What the file holds in [`FORMAT`]: the sinks' series the tracker holds by number.
#[derive(Deserialize)]
struct Stored {
    format: u32,
    source: String,
    written_at: Timestamp,
    tracker: TrackerState,
    sinks: BTreeMap<String, NamedDriverState>,
}

impl Stored {
    /// The checkpoint with every number replaced by the tracker's series.
    fn resolve(self) -> Result<Checkpoint, String> {
        let tracker = self.tracker;
        let sinks = self
            .sinks
            .into_iter()
            .map(|(sink, state)| {
                let state = state
                    .resolve(|id| tracker.published_series(id).cloned())
                    .map_err(|id| {
                        format!("it cannot be read: sink {sink} names published series {id}, which its tracker state does not have")
                    })?;
                Ok((sink, state))
            })
            .collect::<Result<_, String>>()?;
        Ok(Checkpoint {
            format: self.format,
            source: self.source,
            written_at: self.written_at,
            tracker,
            sinks,
        })
    }
}

/// The checkpoint, borrowed, for writing without copying the tracker state. Written with
/// [`FORMAT`], its sinks' views are named by the tracker's published series
/// ([`tailship_sink::Driver::state_view_named`] with [`TrackerState::published_ids`]).
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
        let problem = match self.read() {
            Ok(None) => return None,
            Ok(Some(c)) if c.source != source => {
                format!("it belongs to source {:?}, not {source:?}", c.source)
            }
            Ok(Some(c)) => return Some(c),
            Err(Unreadable::Io(e)) => {
                tracing::error!(path = %self.path.display(), error = %e, "cannot read the checkpoint; starting afresh");
                return None;
            }
            Err(Unreadable::Content(problem)) => problem,
        };
        self.move_aside(&problem);
        None
    }

    /// Reads the checkpoint, whatever its source, and moves nothing: `Ok(None)` when there
    /// is no file.
    pub fn read(&self) -> Result<Option<Checkpoint>, Unreadable> {
        let bytes = match std::fs::read(&self.path) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(Unreadable::Io(e)),
        };
        decode(&bytes).map(Some).map_err(Unreadable::Content)
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
        let mut output = Output::new(&mut file);
        let written = output
            .extend(MAGIC)
            .and_then(|()| postcard::serialize_with_flavor(checkpoint, &mut output))
            .and_then(|()| output.finish());
        if let Err(e) = written {
            let e = match output.failed.take() {
                Some(io) => anyhow::Error::new(io),
                None => anyhow::Error::new(e),
            };
            return Err(e.context(format!(
                "writing the checkpoint {} (is its file system full, or over a file size limit?)",
                self.path.display()
            )));
        }
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

/// postcard's output: a buffer of [`WRITE_BUFFER`] bytes in front of the file.
///
/// Short pieces (every varint, most names) are copied a byte at a time: musl's `memcpy`
/// costs tens of nanoseconds a call whatever the length, and a checkpoint at 10k series is
/// a quarter of a million short pieces (`std::io::BufWriter` and postcard's own writer copy
/// each with `memcpy`; docs/PERFORMANCE.md).
struct Output<W> {
    buf: Vec<u8>,
    writer: W,
    /// The error behind a failed write: postcard's own error type cannot carry it.
    failed: Option<std::io::Error>,
}

/// Pieces up to this long are copied byte by byte.
const SHORT: usize = 16;

impl<W: std::io::Write> Output<W> {
    fn new(writer: W) -> Self {
        Self {
            buf: Vec::with_capacity(WRITE_BUFFER),
            writer,
            failed: None,
        }
    }

    #[inline]
    fn push(&mut self, byte: u8) -> postcard::Result<()> {
        if self.buf.len() == WRITE_BUFFER {
            self.drain()?;
        }
        self.buf.push(byte);
        Ok(())
    }

    #[inline]
    fn extend(&mut self, data: &[u8]) -> postcard::Result<()> {
        if data.len() <= SHORT {
            return data.iter().try_for_each(|&b| self.push(b));
        }
        if self.buf.len() + data.len() > WRITE_BUFFER {
            self.drain()?;
        }
        if data.len() >= WRITE_BUFFER {
            let written = self.writer.write_all(data);
            return self.check(written);
        }
        self.buf.extend_from_slice(data);
        Ok(())
    }

    /// Writes out what the buffer holds and flushes the writer.
    fn finish(&mut self) -> postcard::Result<()> {
        self.drain()?;
        let flushed = self.writer.flush();
        self.check(flushed)
    }

    fn drain(&mut self) -> postcard::Result<()> {
        let written = self.writer.write_all(&self.buf);
        self.buf.clear();
        self.check(written)
    }

    /// Keeps the error of a failed write, which postcard's error type cannot carry.
    fn check(&mut self, result: std::io::Result<()>) -> postcard::Result<()> {
        result.map_err(|e| {
            self.failed = Some(e);
            postcard::Error::SerializeBufferFull
        })
    }
}

impl<W: std::io::Write> postcard::ser_flavors::Flavor for &mut Output<W> {
    type Output = ();

    #[inline]
    fn try_push(&mut self, byte: u8) -> postcard::Result<()> {
        self.push(byte)
    }

    #[inline]
    fn try_extend(&mut self, data: &[u8]) -> postcard::Result<()> {
        self.extend(data)
    }

    fn finalize(self) -> postcard::Result<()> {
        Ok(())
    }
}

/// Why a checkpoint file could not be used.
#[derive(Debug, thiserror::Error)]
pub enum Unreadable {
    #[error("{0}")]
    Io(std::io::Error),
    /// What is wrong with its content, for a log line or an error.
    #[error("{0}")]
    Content(String),
}

/// A checkpoint from the bytes of its file: postcard after [`MAGIC`] in [`FORMAT`] or in
/// format 2, or the JSON of format 1.
fn decode(bytes: &[u8]) -> Result<Checkpoint, String> {
    let (checkpoint, expected) = if let Some(body) = bytes.strip_prefix(MAGIC) {
        // The format comes first: it says how to read the rest.
        let (format, _) = postcard::take_from_bytes::<u32>(body)
            .map_err(|e| format!("it cannot be read: {e}"))?;
        match format {
            FULL_NAMES_FORMAT => (whole::<Checkpoint>(body)?, FULL_NAMES_FORMAT),
            _ => (whole::<Stored>(body)?.resolve()?, FORMAT),
        }
    } else if bytes.trim_ascii_start().starts_with(b"{") {
        let c = serde_json::from_slice::<Checkpoint>(bytes)
            .map_err(|e| format!("it cannot be read (JSON): {e}"))?;
        (c, JSON_FORMAT)
    } else {
        return Err(
            "it is not a tailship checkpoint (it does not begin with one's first bytes)".to_owned(),
        );
    };
    if checkpoint.format != expected {
        return Err(format!(
            "format {} is not {FORMAT} (nor {FULL_NAMES_FORMAT}, nor the JSON of format {JSON_FORMAT})",
            checkpoint.format
        ));
    }
    Ok(checkpoint)
}

/// All of `body` as a `T` in postcard.
fn whole<'de, T: Deserialize<'de>>(body: &'de [u8]) -> Result<T, String> {
    let (value, rest) =
        postcard::take_from_bytes::<T>(body).map_err(|e| format!("it cannot be read: {e}"))?;
    if !rest.is_empty() {
        return Err(format!(
            "it cannot be read: {} bytes after its end",
            rest.len()
        ));
    }
    Ok(value)
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

    fn write(store: &Store, source: &str, format: u32) {
        let tracker = TrackerState::default();
        let cp = CheckpointRef {
            format,
            source,
            written_at: Timestamp::from_millis(5),
            tracker: &tracker,
            sinks: BTreeMap::new(),
        };
        store.save(&cp).unwrap();
    }

    /// A format-1 checkpoint as an earlier version wrote it, with every field that can be
    /// set: the target known in full, an evicted published series, a counter and a gauge
    /// bucket, points in flight and a last send.
    const JSON_V1: &str = r#"{"format":1,"source":"unix:/s","written_at":1795317927309,
        "tracker":{"scrapes":59,"last_scrape":1795317924646,
          "target":{"version":"1.102.0","pid":42,"process_start":123456,"boot_id":"b-1",
                    "started":1795317000,"node_booted":1795316000},
          "capped":true,
          "raw":[["tailscaled_inbound_bytes_total{path=\"derp\"}",{"last":1610872318,"seen":1795317924646,"outs":[0,1]}]],
          "outputs":[{"series":{"name":"tailscale.bytes.received.total","dimensions":{},"unit":"bytes"},
                      "kind":"counter","start":1795317000000,"end":1795317924646,"cumulative":1610872318,"seen":1795317924646},
                     {"series":{"name":"tailscale.bytes.received.total","dimensions":{"path":"derp"},"unit":"bytes"},
                      "kind":"counter","start":1795317000000,"end":1795317924646,"cumulative":1610872318,"seen":1795317924646},
                     null]},
        "sinks":{"gcm":{"series":[
          {"series":{"name":"tailscale.bytes.received.total","dimensions":{"path":"derp"},"unit":"bytes"},
           "buckets":[{"counter":{"start":1795317000000,"bucket":1795317900000,"end":1795317924646,
                                  "count":2,"sum":17,"min":5,"max":12,"cumulative":1610872318}}],
           "in_flight":1,"last_sent":1795317914646},
          {"series":{"name":"tailscale.routes.advertised","dimensions":{},"unit":"count"},
           "buckets":[{"gauge":{"bucket":1795317900000,"at":1795317924646,"count":8,"sum":16.0,
                                "min":2.0,"max":2.0,"last":2.0}}]}]}}}"#;

    fn json(c: &Checkpoint) -> serde_json::Value {
        serde_json::to_value(c).unwrap()
    }

    #[test]
    fn round_trip_with_owner_only_permissions() {
        use std::os::unix::fs::PermissionsExt as _;
        let store = Store::new(temp());
        store.ensure_writable().unwrap();
        assert!(store.load("unix:/s").is_none(), "nothing yet");
        write(&store, "unix:/s", FORMAT);
        assert!(std::fs::read(store.path()).unwrap().starts_with(MAGIC));
        let cp = store.load("unix:/s").unwrap();
        assert_eq!(cp.written_at, Timestamp::from_millis(5));
        let mode = std::fs::metadata(store.path())
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
    }

    /// `v1` in format 3 as the agent writes it: each sink series the tracker holds as its
    /// number (found here by equality; the agent finds the tracker's own `Arc`), plus
    /// `extra` numbers of series the tracker does not have.
    fn named_bytes(v1: &Checkpoint, extra: &[u32]) -> Vec<u8> {
        #[derive(Serialize)]
        enum Name<'a> {
            Id(u32),
            Series(&'a tailship_model::Series),
        }
        #[derive(Serialize)]
        struct Entry<'a> {
            series: Name<'a>,
            buckets: &'a [tailship_sink::Value],
            in_flight: usize,
            last_sent: Option<Timestamp>,
        }
        #[derive(Serialize)]
        struct Sink<'a> {
            series: Vec<Entry<'a>>,
        }
        let number = |series| (0..1000).find(|&id| v1.tracker.published_series(id) == Some(series));
        let sinks: BTreeMap<&str, Sink<'_>> = v1
            .sinks
            .iter()
            .map(|(name, state)| {
                let mut series: Vec<Entry<'_>> = state
                    .series
                    .iter()
                    .map(|s| Entry {
                        series: number(&s.series).map_or(Name::Series(&s.series), Name::Id),
                        buckets: &s.buckets,
                        in_flight: s.in_flight,
                        last_sent: s.last_sent,
                    })
                    .collect();
                series.extend(extra.iter().map(|&id| Entry {
                    series: Name::Id(id),
                    buckets: &[],
                    in_flight: 0,
                    last_sent: None,
                }));
                (name.as_str(), Sink { series })
            })
            .collect();
        let mut bytes = MAGIC.to_vec();
        postcard::to_io(
            &(FORMAT, &v1.source, v1.written_at, &v1.tracker, &sinks),
            &mut bytes,
        )
        .unwrap();
        bytes
    }

    #[test]
    fn format_3_names_the_trackers_series_by_number() {
        let store = Store::new(temp().with_file_name("v3.json"));
        std::fs::write(store.path(), JSON_V1).unwrap();
        let v1 = store.load("unix:/s").unwrap();
        let named = named_bytes(&v1, &[]);
        std::fs::write(store.path(), &named).unwrap();
        let v3 = store.load("unix:/s").expect("format 3 is read");
        assert_eq!(v3.format, FORMAT);
        let mut expected = json(&v1);
        expected["format"] = FORMAT.into();
        assert_eq!(json(&v3), expected, "every series back in full");

        // The same in format 2, every series in full: longer by the names.
        let mut full = MAGIC.to_vec();
        let v2 = Checkpoint {
            format: FULL_NAMES_FORMAT,
            ..v1
        };
        postcard::to_io(&v2, &mut full).unwrap();
        assert!(
            named.len() < full.len(),
            "{} against {}",
            named.len(),
            full.len()
        );

        // A number the tracker has no series for: not guessed, moved aside.
        std::fs::write(store.path(), named_bytes(&v2, &[7])).unwrap();
        let problem = match store.read() {
            Err(Unreadable::Content(p)) => p,
            other => panic!("{other:?}"),
        };
        assert!(problem.contains("published series 7"), "{problem}");
        assert!(store.load("unix:/s").is_none());
        assert!(!store.path().exists());
    }

    #[test]
    fn every_field_survives_the_binary_format_and_json_v1_is_read() {
        // The target known in full, then in part: a binary format has no field names, so
        // an unknown field must still take its place.
        let partial = JSON_V1
            .replace(r#""pid":42,"#, "")
            .replace(r#""boot_id":"b-1","#, "");
        for text in [JSON_V1, &partial] {
            let store = Store::new(temp().with_file_name("v1.json"));
            std::fs::write(store.path(), text).unwrap();
            let v1 = store
                .load("unix:/s")
                .expect("a format-1 checkpoint is read");
            let expected: serde_json::Value = serde_json::from_str(text).unwrap();
            assert_eq!(json(&v1), expected, "nothing lost reading JSON");

            // Format 2: postcard, every series in full.
            let mut binary = MAGIC.to_vec();
            postcard::to_io(
                &Checkpoint {
                    format: FULL_NAMES_FORMAT,
                    ..v1
                },
                &mut binary,
            )
            .unwrap();
            std::fs::write(store.path(), &binary).unwrap();
            let v2 = store
                .load("unix:/s")
                .expect("the binary checkpoint is read");
            assert_eq!(v2.format, FULL_NAMES_FORMAT);
            let mut expected = expected;
            expected["format"] = FULL_NAMES_FORMAT.into();
            assert_eq!(json(&v2), expected, "nothing lost in the binary format");
            assert!(
                binary.len() * 2 < text.len(),
                "{} bytes against {}",
                binary.len(),
                text.len()
            );
        }
    }

    #[test]
    fn the_output_buffer_writes_every_piece_in_order() {
        // Pieces of every kind: bytes, short and long slices, one longer than the buffer,
        // across several drains.
        let mut expected = Vec::new();
        let mut out = Output::new(Vec::new());
        for i in 0..20_000usize {
            let piece: Vec<u8> = match i % 5 {
                0 => vec![i as u8],
                1 => (0..(i % 17) as u8).collect(),
                2 => vec![b'x'; 17 + i % 300],
                3 if i == 10_003 => vec![7; WRITE_BUFFER + 1],
                _ => vec![],
            };
            if piece.len() == 1 {
                out.push(piece[0]).unwrap();
            } else {
                out.extend(&piece).unwrap();
            }
            expected.extend_from_slice(&piece);
        }
        out.finish().unwrap();
        assert!(expected.len() > 3 * WRITE_BUFFER);
        assert!(out.writer == expected, "{} bytes", out.writer.len());
    }

    #[test]
    fn a_failed_write_keeps_its_error() {
        struct Full;
        impl std::io::Write for Full {
            fn write(&mut self, _: &[u8]) -> std::io::Result<usize> {
                Err(std::io::Error::from_raw_os_error(28)) // ENOSPC
            }
            fn flush(&mut self) -> std::io::Result<()> {
                Ok(())
            }
        }
        let mut out = Output::new(Full);
        let result = (0..WRITE_BUFFER + 1).try_for_each(|_| out.push(1));
        assert!(result.is_err());
        assert_eq!(out.failed.unwrap().raw_os_error(), Some(28));
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
        let cases = [
            "{not json",
            "",
            "not a checkpoint",
            "truncate",
            "trailing",
            "foreign",
            "format",
            "json format",
        ];
        for (i, damage) in cases.iter().enumerate() {
            let store = Store::new(temp().with_file_name(format!("state{i}.json")));
            write(&store, "unix:/s", FORMAT);
            let good = std::fs::read(store.path()).unwrap();
            let bad = match *damage {
                "truncate" => good[..good.len() - 1].to_vec(),
                "trailing" => [good.as_slice(), b"x"].concat(),
                "foreign" => {
                    write(&store, "http://elsewhere/metrics", FORMAT);
                    std::fs::read(store.path()).unwrap()
                }
                "format" => {
                    write(&store, "unix:/s", 99);
                    std::fs::read(store.path()).unwrap()
                }
                "json format" => JSON_V1.replace("\"format\":1", "\"format\":2").into_bytes(),
                other => other.as_bytes().to_vec(),
            };
            std::fs::write(store.path(), &bad).unwrap();
            let problem = match store.read() {
                Err(Unreadable::Content(p)) => p,
                Ok(Some(c)) => format!("source {}", c.source),
                other => panic!("{damage}: {other:?}"),
            };
            assert!(!problem.is_empty());
            let before = aside_files(&store);
            assert!(store.load("unix:/s").is_none(), "{damage}");
            assert!(!store.path().exists(), "{damage}: moved away");
            assert_eq!(aside_files(&store), before + 1, "{damage}: {problem}");
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

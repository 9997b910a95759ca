//! The run's history on disk: an SQLite database in WAL mode (`DIR/.camwatch/history.sqlite`
//! by default), so that a kill at any moment leaves it readable, a restart shows everything
//! at once, and people can query it with their own tools.
//!
//! Tables:
//! - `checkpoints`: one row per (file, content): path (relative to the watched folder),
//!   BLAKE3 hash, size, mtime, epoch from the name, status (`ok`/`error`) and error;
//! - `predictions`: per (content hash, sample, preprocessing): logits, probabilities,
//!   predicted class;
//! - `maps`: per (content hash, sample, preprocessing, layer, target, method): the raw
//!   map (little-endian float32, `height × width`), the class it explains, and the box
//!   figures with the box they were measured against;
//! - `trust`: per map (the same key as `maps`) and figure (`confidence_change`,
//!   `deletion_auc`, `insertion_auc`, `road_combined`, `class_corr`, `random_corr`), its
//!   value; `steps` is deletion's and insertion's n (0 for the others). Written after the
//!   maps, when the worker has time. (A table older camwatch builds do not read, so the
//!   schema version stays.)
//!
//! Results hang off the content hash, so the same weights under two names (a hard link,
//! `latest` beside `epoch_N`) are computed once.
//!
//! The schema is versioned (`meta.schema`): a history an older camwatch wrote is brought
//! up to date step by step when it is opened for writing ([`MIGRATIONS`]), in one
//! transaction, and read as it is when opened read-only (another user's run). A history
//! newer than this camwatch is refused, named, never changed.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use rusqlite::{Connection, OpenFlags, OptionalExtension, params};

use super::scan::Fingerprint;
use crate::cam::{Map, Method};
use crate::render::SampleTrust;
pub use crate::results::stored::{
    CheckpointRow, Prediction, Setting, Status, StoredMap, StoredSample,
};
use crate::results::stored::{set_figure, trust_rows};

const SCHEMA_VERSION: i64 = 2;

/// The steps from each version to the next: `MIGRATIONS[i]` takes version `i + 1` to
/// `i + 2`. Only ever appended to.
const MIGRATIONS: [&str; 1] = [
    // 2: where a checkpoint's results came from, when another camwatch published them.
    "ALTER TABLE checkpoints ADD COLUMN origin TEXT;",
];

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS checkpoints (
    id INTEGER PRIMARY KEY,
    path TEXT NOT NULL,
    hash TEXT NOT NULL,
    size INTEGER NOT NULL,
    mtime_ns INTEGER NOT NULL,
    epoch INTEGER,
    status TEXT NOT NULL CHECK (status IN ('ok', 'error')),
    error TEXT,
    format TEXT,
    arch TEXT,
    recorded_ns INTEGER NOT NULL,
    origin TEXT,
    UNIQUE (path, hash)
);
CREATE TABLE IF NOT EXISTS predictions (
    hash TEXT NOT NULL,
    sample TEXT NOT NULL,
    prep TEXT NOT NULL,
    logits BLOB NOT NULL,
    probs BLOB NOT NULL,
    predicted INTEGER NOT NULL,
    PRIMARY KEY (hash, sample, prep)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS maps (
    hash TEXT NOT NULL,
    sample TEXT NOT NULL,
    prep TEXT NOT NULL,
    layer TEXT NOT NULL,
    target TEXT NOT NULL,
    method TEXT NOT NULL,
    class INTEGER NOT NULL,
    height INTEGER NOT NULL,
    width INTEGER NOT NULL,
    map BLOB NOT NULL,
    box TEXT,
    box_energy REAL,
    pointing_hit INTEGER,
    PRIMARY KEY (hash, sample, prep, layer, target, method)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS trust (
    hash TEXT NOT NULL,
    sample TEXT NOT NULL,
    prep TEXT NOT NULL,
    layer TEXT NOT NULL,
    target TEXT NOT NULL,
    method TEXT NOT NULL,
    figure TEXT NOT NULL,
    steps INTEGER NOT NULL,
    value REAL NOT NULL,
    PRIMARY KEY (hash, sample, prep, layer, target, method, figure, steps)
) WITHOUT ROWID;
";

/// A stored schema version this camwatch reads (this one's or an older one), or the
/// error naming it.
fn check_schema(file: &Path, found: String) -> Result<i64, HistoryError> {
    match found.parse::<i64>() {
        Ok(version) if (1..=SCHEMA_VERSION).contains(&version) => Ok(version),
        _ => Err(HistoryError {
            path: file.to_path_buf(),
            source: HistoryProblem::Schema { found },
        }),
    }
}

/// Brings a history at `version` up to this camwatch's schema, all steps in one
/// transaction: a crash leaves it as it was.
fn migrate(conn: &mut Connection, version: i64) -> rusqlite::Result<()> {
    let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
    // Read again under the write lock: another camwatch may have migrated it meanwhile.
    let now: String = tx.query_row("SELECT value FROM meta WHERE key = 'schema'", [], |r| {
        r.get(0)
    })?;
    let from = now.parse::<i64>().unwrap_or(version).max(version);
    for step in &MIGRATIONS[(from - 1) as usize..] {
        tx.execute_batch(step)?;
    }
    tx.execute(
        "UPDATE meta SET value = ?1 WHERE key = 'schema'",
        [SCHEMA_VERSION.to_string()],
    )?;
    tx.commit()
}

/// `file:PATH?immutable=1`, the path percent-encoded as SQLite's URIs want.
fn immutable_uri(file: &Path) -> String {
    let absolute = std::path::absolute(file).unwrap_or_else(|_| file.to_path_buf());
    let mut uri = String::from("file:");
    for &byte in crate::paths::bytes(&absolute) {
        if byte.is_ascii_alphanumeric() || b"/-_.~".contains(&byte) {
            uri.push(byte as char);
        } else {
            uri.push_str(&format!("%{byte:02X}"));
        }
    }
    uri.push_str("?immutable=1");
    uri
}

#[derive(Debug, thiserror::Error)]
#[error("history {}: {source}", path.display())]
pub struct HistoryError {
    pub path: PathBuf,
    #[source]
    pub source: HistoryProblem,
}

#[derive(Debug, thiserror::Error)]
pub enum HistoryProblem {
    #[error(transparent)]
    Sqlite(#[from] rusqlite::Error),
    #[error("cannot create {}: {source} (--history puts it elsewhere)", folder.display())]
    Folder {
        folder: PathBuf,
        source: std::io::Error,
    },
    #[error(
        "schema version {found}, this camwatch reads 1 to {SCHEMA_VERSION} (a newer camwatch wrote it)"
    )]
    Schema { found: String },
}
/// What [`History::marks`] says of one checkpoint: per table, its rows and a sum.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Marks {
    predictions: (i64, f64),
    maps: (i64, f64),
    trust: (i64, f64),
}

pub struct History {
    conn: Connection,
    /// The schema version as found (a read-only history is read as it is).
    version: i64,
    file: PathBuf,
    /// The watched folder: paths are stored relative to it, so both can move together.
    root: PathBuf,
}

impl History {
    /// Creates the folder the database `file` goes in, if it is missing.
    pub fn make_folder(file: &Path) -> Result<(), HistoryError> {
        let Some(parent) = file.parent() else {
            return Ok(());
        };
        std::fs::create_dir_all(parent).map_err(|source| HistoryError {
            path: file.to_path_buf(),
            source: HistoryProblem::Folder {
                folder: parent.to_path_buf(),
                source,
            },
        })
    }

    /// Opens (or creates) the database `file` for the run in `root`.
    pub fn open(file: &Path, root: &Path) -> Result<History, HistoryError> {
        History::make_folder(file)?;
        let wrap = |source: rusqlite::Error| HistoryError {
            path: file.to_path_buf(),
            source: source.into(),
        };
        let mut conn = Connection::open(file).map_err(wrap)?;
        // WAL: a reader (the TUI, `camwatch history`, sqlite3) never blocks the writer, and a
        // kill -9 loses at most the transaction being written. NORMAL sync is durable
        // against a crash of this process (not of the machine), which is the risk here.
        conn.busy_timeout(std::time::Duration::from_secs(10))
            .map_err(wrap)?;
        conn.pragma_update(None, "journal_mode", "WAL")
            .map_err(wrap)?;
        conn.pragma_update(None, "synchronous", "NORMAL")
            .map_err(wrap)?;
        let existing: i64 = conn
            .query_row(
                "SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name = 'meta'",
                [],
                |r| r.get(0),
            )
            .map_err(wrap)?;
        let version: Option<String> = match existing {
            0 => None,
            _ => conn
                .query_row("SELECT value FROM meta WHERE key = 'schema'", [], |r| {
                    r.get(0)
                })
                .optional()
                .map_err(wrap)?,
        };
        if let Some(found) = version {
            let version = check_schema(file, found)?;
            if version < SCHEMA_VERSION {
                migrate(&mut conn, version).map_err(wrap)?;
            }
        }
        conn.execute_batch(SCHEMA).map_err(wrap)?;
        let version: Option<String> = conn
            .query_row("SELECT value FROM meta WHERE key = 'schema'", [], |r| {
                r.get(0)
            })
            .optional()
            .map_err(wrap)?;
        match version {
            None => {
                conn.execute(
                    "INSERT INTO meta (key, value) VALUES ('schema', ?1)",
                    [SCHEMA_VERSION.to_string()],
                )
                .map_err(wrap)?;
            }
            Some(found) => {
                check_schema(file, found)?;
            }
        }
        Ok(History {
            conn,
            version: SCHEMA_VERSION,
            file: file.to_path_buf(),
            root: root.to_path_buf(),
        })
    }

    /// An empty history in memory, for the run in `root`: what a reader assembles from
    /// published results without writing anything ([`super::published::reading_history`]).
    pub fn in_memory(root: &Path) -> Result<History, HistoryError> {
        let file = PathBuf::from(":memory:");
        let wrap = |source: rusqlite::Error| HistoryError {
            path: file.clone(),
            source: source.into(),
        };
        let conn = Connection::open_in_memory().map_err(wrap)?;
        conn.execute_batch(SCHEMA).map_err(wrap)?;
        conn.execute(
            "INSERT INTO meta (key, value) VALUES ('schema', ?1)",
            [SCHEMA_VERSION.to_string()],
        )
        .map_err(wrap)?;
        Ok(History {
            conn,
            version: SCHEMA_VERSION,
            file,
            root: root.to_path_buf(),
        })
    }

    /// Opens the existing database `file` for reading only: another camwatch's (perhaps
    /// another user's) history, or one in a folder this user may not write.
    ///
    /// A WAL database is read through its `-shm` index, which SQLite creates beside it
    /// when missing. While its writer runs, the index is there and is read (SQLite
    /// copes with one this user may not write). Once the writer has closed it, the
    /// index is gone, and in a folder this user may not write it cannot be made: the
    /// database, then whole in its main file, is opened as immutable instead.
    pub fn open_read_only(file: &Path, root: &Path) -> Result<History, HistoryError> {
        let wrap = |source: rusqlite::Error| HistoryError {
            path: file.to_path_buf(),
            source: source.into(),
        };
        let flags = OpenFlags::SQLITE_OPEN_READ_ONLY
            | OpenFlags::SQLITE_OPEN_NO_MUTEX
            | OpenFlags::SQLITE_OPEN_URI;
        let schema = |conn: &Connection| -> rusqlite::Result<String> {
            conn.busy_timeout(std::time::Duration::from_secs(10))?;
            conn.query_row("SELECT value FROM meta WHERE key = 'schema'", [], |r| {
                r.get(0)
            })
        };
        let opened = Connection::open_with_flags(file, flags)
            .and_then(|conn| schema(&conn).map(|found| (conn, found)));
        let (conn, found) = match opened {
            Ok(opened) => opened,
            Err(_) if file.exists() => {
                let conn = Connection::open_with_flags(immutable_uri(file), flags).map_err(wrap)?;
                let found = schema(&conn).map_err(wrap)?;
                (conn, found)
            }
            Err(e) => return Err(wrap(e)),
        };
        let version = check_schema(file, found)?;
        Ok(History {
            conn,
            version,
            file: file.to_path_buf(),
            root: root.to_path_buf(),
        })
    }

    /// Writes a consistent copy of the whole database to the new file `to` (whose
    /// folder is created): a cache history starts from the run folder's.
    pub fn copy_to(&self, to: &Path) -> Result<(), HistoryError> {
        History::make_folder(to)?;
        let Some(target) = to.to_str() else {
            // VACUUM INTO takes text: such a cache history starts empty instead.
            return Ok(());
        };
        self.conn
            .execute("VACUUM INTO ?1", [target])
            .map(drop)
            .map_err(|e| HistoryError {
                path: to.to_path_buf(),
                source: e.into(),
            })
    }

    pub fn file(&self) -> &Path {
        &self.file
    }

    /// A number that changes whenever another connection (another camwatch writing the
    /// run) commits: a reader polls it to know when to read again.
    pub fn data_version(&self) -> Result<i64, HistoryError> {
        self.conn
            .query_row("PRAGMA data_version", [], |r| r.get(0))
            .map_err(|e| self.wrap(e))
    }

    fn wrap(&self, source: rusqlite::Error) -> HistoryError {
        HistoryError {
            path: self.file.clone(),
            source: source.into(),
        }
    }

    /// The path as stored: relative to the watched folder; TEXT when it is UTF-8, else
    /// a BLOB of its bytes, so that no name is changed on the way (see `paths`).
    fn relative(&self, path: &Path) -> rusqlite::types::Value {
        let relative = path.strip_prefix(&self.root).unwrap_or(path);
        match relative.to_str() {
            Some(text) => rusqlite::types::Value::Text(text.to_string()),
            None => rusqlite::types::Value::Blob(crate::paths::bytes(relative).to_vec()),
        }
    }

    /// Every recorded checkpoint, in the order they were recorded.
    pub fn checkpoints(&self) -> Result<Vec<CheckpointRow>, HistoryError> {
        // A version 1 history (read-only: not migrated) has no origins.
        let origin = if self.version >= 2 { "origin" } else { "NULL" };
        let mut statement = self
            .conn
            .prepare(&format!(
                "SELECT path, hash, size, mtime_ns, epoch, status, error, format, arch, {origin}
                 FROM checkpoints ORDER BY id"
            ))
            .map_err(|e| self.wrap(e))?;
        let rows = statement
            .query_map([], |r| {
                let path = match r.get_ref(0)? {
                    rusqlite::types::ValueRef::Text(b) | rusqlite::types::ValueRef::Blob(b) => {
                        crate::paths::from_bytes(b)
                    }
                    _ => PathBuf::new(),
                };
                let status: String = r.get(5)?;
                Ok(CheckpointRow {
                    path: self.root.join(path),
                    hash: r.get(1)?,
                    fingerprint: Fingerprint {
                        size: r.get::<_, i64>(2)? as u64,
                        mtime_ns: r.get(3)?,
                    },
                    epoch: r.get::<_, Option<i64>>(4)?.map(|e| e as u64),
                    status: if status == "ok" {
                        Status::Ok
                    } else {
                        Status::Error
                    },
                    error: r.get(6)?,
                    format: r.get(7)?,
                    arch: r.get(8)?,
                    origin: r.get(9)?,
                })
            })
            .map_err(|e| self.wrap(e))?;
        rows.collect::<Result<_, _>>().map_err(|e| self.wrap(e))
    }

    /// Records a checkpoint and its samples' results in one transaction: after a crash
    /// either all of it is there or none.
    pub fn record(
        &mut self,
        row: &CheckpointRow,
        setting: &Setting,
        results: &[(String, StoredSample)],
    ) -> Result<(), HistoryError> {
        let path = self.relative(&row.path);
        let recorded_ns = super::scan::nanos_since_epoch(std::time::SystemTime::now());
        let file = &self.file;
        let wrap = |source: rusqlite::Error| HistoryError {
            path: file.clone(),
            source: source.into(),
        };
        let tx = self.conn.transaction().map_err(wrap)?;
        let result = (|| {
            tx.execute(
                "INSERT INTO checkpoints
                     (path, hash, size, mtime_ns, epoch, status, error, format, arch, recorded_ns,
                      origin)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)
                 ON CONFLICT (path, hash) DO UPDATE SET
                     size = excluded.size, mtime_ns = excluded.mtime_ns, epoch = excluded.epoch,
                     status = excluded.status, error = excluded.error,
                     format = excluded.format, arch = excluded.arch,
                     origin = coalesce(excluded.origin, origin)",
                params![
                    path,
                    row.hash,
                    row.fingerprint.size as i64,
                    row.fingerprint.mtime_ns,
                    row.epoch.map(|e| e as i64),
                    row.status.as_str(),
                    row.error,
                    row.format,
                    row.arch,
                    recorded_ns,
                    row.origin,
                ],
            )?;
            for (sample, stored) in results {
                if let Some(p) = &stored.prediction {
                    tx.execute(
                        "INSERT OR REPLACE INTO predictions
                             (hash, sample, prep, logits, probs, predicted)
                         VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                        params![
                            row.hash,
                            sample,
                            setting.prep,
                            to_blob(&p.logits),
                            to_blob(&p.probs),
                            p.predicted as i64
                        ],
                    )?;
                }
                for m in &stored.maps {
                    let (bbox, energy, hit) = match &m.on_object {
                        Some((b, e, h)) => (Some(b.as_str()), Some(*e as f64), Some(*h)),
                        None => (None, None, None),
                    };
                    tx.execute(
                        "INSERT OR REPLACE INTO maps
                             (hash, sample, prep, layer, target, method, class, height, width,
                              map, box, box_energy, pointing_hit)
                         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13)",
                        params![
                            row.hash,
                            sample,
                            setting.prep,
                            setting.layer,
                            setting.target,
                            m.method.name(),
                            m.class as i64,
                            m.map.height as i64,
                            m.map.width as i64,
                            to_blob(&m.map.values),
                            bbox,
                            energy,
                            hit,
                        ],
                    )?;
                }
                insert_trust(&tx, &row.hash, sample, setting, &stored.trust)?;
            }
            Ok(())
        })();
        result.map_err(wrap)?;
        tx.commit().map_err(wrap)
    }

    /// Adds trust figures to samples already recorded for `hash`.
    pub fn record_trust(
        &mut self,
        hash: &str,
        setting: &Setting,
        results: &[(String, SampleTrust)],
    ) -> Result<(), HistoryError> {
        let file = &self.file;
        let wrap = |source: rusqlite::Error| HistoryError {
            path: file.clone(),
            source: source.into(),
        };
        let tx = self.conn.transaction().map_err(wrap)?;
        for (sample, trust) in results {
            insert_trust(&tx, hash, sample, setting, trust).map_err(wrap)?;
        }
        tx.commit().map_err(wrap)
    }

    /// Per checkpoint (by content hash), what the history holds for `setting`, in
    /// brief: per table, its rows and a sum of what a reader sees change when a row is
    /// replaced (a recomputed map's box energy, a damaged row's lengths). A reader that
    /// keeps what it read reads again only the checkpoints whose marks changed; about
    /// 10 ms for 120 checkpoints × 64 samples.
    pub fn marks(&self, setting: &Setting) -> Result<HashMap<String, Marks>, HistoryError> {
        let mut marks: HashMap<String, Marks> = HashMap::new();
        let steps = setting.steps as i64;
        type Slot = fn(&mut Marks) -> &mut (i64, f64);
        let queries: [(&str, &[&dyn rusqlite::ToSql], Slot); 3] = [
            (
                "SELECT hash, count(*),
                        total(predicted) + total(length(logits)) + total(length(probs))
                 FROM predictions WHERE prep = ?1 GROUP BY hash",
                &[&setting.prep],
                |m| &mut m.predictions,
            ),
            (
                "SELECT hash, count(*),
                        total(box_energy) + total(class) + total(length(map)) + total(height * width)
                 FROM maps WHERE prep = ?1 AND layer = ?2 AND target = ?3 GROUP BY hash",
                &[&setting.prep, &setting.layer, &setting.target],
                |m| &mut m.maps,
            ),
            (
                "SELECT hash, count(*), total(value) FROM trust
                 WHERE prep = ?1 AND layer = ?2 AND target = ?3 AND steps IN (0, ?4)
                 GROUP BY hash",
                &[&setting.prep, &setting.layer, &setting.target, &steps],
                |m| &mut m.trust,
            ),
        ];
        for (sql, params, slot) in queries {
            let mut statement = self.conn.prepare_cached(sql).map_err(|e| self.wrap(e))?;
            let rows = statement
                .query_map(params, |r| {
                    Ok((
                        r.get::<_, String>(0)?,
                        r.get::<_, i64>(1)?,
                        r.get::<_, f64>(2)?,
                    ))
                })
                .map_err(|e| self.wrap(e))?;
            for row in rows {
                let (hash, count, sum) = row.map_err(|e| self.wrap(e))?;
                *slot(marks.entry(hash).or_default()) = (count, sum);
            }
        }
        Ok(marks)
    }

    /// What is stored for `hash` under `setting`, for each of `samples` (digests).
    pub fn results(
        &self,
        hash: &str,
        setting: &Setting,
        samples: &[String],
    ) -> Result<Vec<StoredSample>, HistoryError> {
        let mut predictions = self
            .conn
            .prepare_cached(
                "SELECT logits, probs, predicted FROM predictions
                 WHERE hash = ?1 AND sample = ?2 AND prep = ?3",
            )
            .map_err(|e| self.wrap(e))?;
        let mut maps = self
            .conn
            .prepare_cached(
                "SELECT method, class, height, width, map, box, box_energy, pointing_hit
                 FROM maps
                 WHERE hash = ?1 AND sample = ?2 AND prep = ?3 AND layer = ?4 AND target = ?5",
            )
            .map_err(|e| self.wrap(e))?;
        let mut trust = self
            .conn
            .prepare_cached(
                "SELECT method, figure, value FROM trust
                 WHERE hash = ?1 AND sample = ?2 AND prep = ?3 AND layer = ?4 AND target = ?5
                   AND steps IN (0, ?6)",
            )
            .map_err(|e| self.wrap(e))?;
        let mut out = Vec::with_capacity(samples.len());
        for sample in samples {
            let prediction = predictions
                .query_row(params![hash, sample, setting.prep], |r| {
                    Ok(Prediction {
                        logits: from_blob(&r.get::<_, Vec<u8>>(0)?),
                        probs: from_blob(&r.get::<_, Vec<u8>>(1)?),
                        predicted: r.get::<_, i64>(2)? as usize,
                    })
                })
                .optional()
                .map_err(|e| self.wrap(e))?
                // A row that does not hold together (written by hand, or damaged) counts
                // as not stored: it is computed again rather than trusted.
                .filter(Prediction::is_whole);
            let rows = maps
                .query_map(
                    params![hash, sample, setting.prep, setting.layer, setting.target],
                    |r| {
                        let method: String = r.get(0)?;
                        let bbox: Option<String> = r.get(5)?;
                        let energy: Option<f64> = r.get(6)?;
                        let hit: Option<bool> = r.get(7)?;
                        Ok((
                            method,
                            r.get::<_, i64>(1)? as usize,
                            Map {
                                height: r.get::<_, i64>(2)? as usize,
                                width: r.get::<_, i64>(3)? as usize,
                                values: from_blob(&r.get::<_, Vec<u8>>(4)?),
                            },
                            bbox.zip(energy)
                                .zip(hit)
                                .map(|((b, e), h)| (b, e as f32, h)),
                        ))
                    },
                )
                .map_err(|e| self.wrap(e))?;
            let mut stored = Vec::new();
            for row in rows {
                let (method, class, map, on_object) = row.map_err(|e| self.wrap(e))?;
                if !map.is_whole() {
                    continue;
                }
                // A method this camwatch no longer knows is left in the file, unread.
                if let Ok(method) = method.parse::<Method>() {
                    stored.push(StoredMap {
                        method,
                        class,
                        map,
                        on_object,
                    });
                }
            }
            let rows = trust
                .query_map(
                    params![
                        hash,
                        sample,
                        setting.prep,
                        setting.layer,
                        setting.target,
                        setting.steps as i64
                    ],
                    |r| Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?, r.get(2)?)),
                )
                .map_err(|e| self.wrap(e))?;
            let mut figures = SampleTrust::default();
            for row in rows {
                let (method, figure, value): (String, String, f64) =
                    row.map_err(|e| self.wrap(e))?;
                if let Ok(method) = method.parse::<Method>() {
                    set_figure(&mut figures, method, &figure, value as f32);
                }
            }
            out.push(StoredSample {
                prediction,
                maps: stored,
                trust: figures,
            });
        }
        Ok(out)
    }
}
fn insert_trust(
    tx: &rusqlite::Transaction,
    hash: &str,
    sample: &str,
    setting: &Setting,
    trust: &SampleTrust,
) -> Result<(), rusqlite::Error> {
    for (method, figure, steps, value) in trust_rows(trust, setting.steps) {
        tx.execute(
            "INSERT OR REPLACE INTO trust
                 (hash, sample, prep, layer, target, method, figure, steps, value)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
            params![
                hash,
                sample,
                setting.prep,
                setting.layer,
                setting.target,
                method.name(),
                figure,
                steps as i64,
                value as f64
            ],
        )?;
    }
    Ok(())
}
fn to_blob(values: &[f32]) -> Vec<u8> {
    values.iter().flat_map(|v| v.to_le_bytes()).collect()
}

fn from_blob(bytes: &[u8]) -> Vec<f32> {
    bytes
        .chunks_exact(4)
        .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn temp_dir(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("camwatch-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    #[test]
    fn unusable_places_are_named() {
        let dir = temp_dir("history-errors");
        std::fs::write(dir.join("a-file"), b"x").unwrap();
        let blocked = dir.join("a-file/.camwatch/history.sqlite");
        let error = History::open(&blocked, &dir).err().unwrap().to_string();
        assert!(
            error.contains("cannot create") && error.contains("--history"),
            "{error}"
        );
        let db = dir.join("history.sqlite");
        drop(History::open(&db, &dir).unwrap());
        let conn = Connection::open(&db).unwrap();
        conn.execute("UPDATE meta SET value = '99' WHERE key = 'schema'", [])
            .unwrap();
        let error = History::open(&db, &dir).err().unwrap().to_string();
        assert!(error.contains("schema version 99"), "{error}");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    /// The `checkpoints` table as camwatch wrote it at schema version 1.
    const CHECKPOINTS_V1: &str = "
        CREATE TABLE checkpoints (
            id INTEGER PRIMARY KEY,
            path TEXT NOT NULL,
            hash TEXT NOT NULL,
            size INTEGER NOT NULL,
            mtime_ns INTEGER NOT NULL,
            epoch INTEGER,
            status TEXT NOT NULL CHECK (status IN ('ok', 'error')),
            error TEXT,
            format TEXT,
            arch TEXT,
            recorded_ns INTEGER NOT NULL,
            UNIQUE (path, hash)
        );";

    #[test]
    fn a_version_1_history_is_migrated_for_writing_and_read_as_it_is() {
        let dir = temp_dir("history-v1");
        let db = dir.join("history.sqlite");
        {
            let conn = Connection::open(&db).unwrap();
            conn.execute_batch(CHECKPOINTS_V1).unwrap();
            conn.execute_batch(SCHEMA).unwrap();
            conn.execute("INSERT INTO meta VALUES ('schema', '1')", [])
                .unwrap();
            conn.execute(
                "INSERT INTO checkpoints (path, hash, size, mtime_ns, epoch, status, format,
                                          recorded_ns)
                 VALUES ('epoch_1.pdparams', 'abc', 10, 5, 1, 'ok', 'pdparams', 1)",
                [],
            )
            .unwrap();
        }
        let schema = || -> String {
            Connection::open(&db)
                .unwrap()
                .query_row("SELECT value FROM meta WHERE key = 'schema'", [], |r| {
                    r.get(0)
                })
                .unwrap()
        };
        let expected = CheckpointRow {
            path: dir.join("epoch_1.pdparams"),
            hash: "abc".into(),
            fingerprint: Fingerprint {
                size: 10,
                mtime_ns: 5,
            },
            epoch: Some(1),
            status: Status::Ok,
            error: None,
            format: Some("pdparams".into()),
            arch: None,
            origin: None,
        };
        // Read-only (another user's run): read as it is, left as it is.
        let read = History::open_read_only(&db, &dir).unwrap();
        assert_eq!(read.checkpoints().unwrap(), vec![expected.clone()]);
        drop(read);
        assert_eq!(schema(), "1");

        // Opened to write: brought up to date, nothing lost.
        let mut history = History::open(&db, &dir).unwrap();
        assert_eq!(schema(), SCHEMA_VERSION.to_string());
        assert_eq!(history.checkpoints().unwrap(), vec![expected.clone()]);
        let setting = Setting {
            prep: "imagenet@224".into(),
            layer: "stage4".into(),
            target: "predicted".into(),
            steps: 16,
        };
        let taken = CheckpointRow {
            path: dir.join("epoch_2.pdparams"),
            hash: "def".into(),
            origin: Some("s3://b/run/.camwatch/results/x/epoch_2.pdparams.e1.json".into()),
            ..expected.clone()
        };
        history.record(&taken, &setting, &[]).unwrap();
        drop(history);
        let again = History::open(&db, &dir).unwrap();
        assert_eq!(again.checkpoints().unwrap(), vec![expected, taken]);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    use crate::cam::metrics::Faithfulness;
    use crate::cam::trust::Sanity;

    #[test]
    fn round_trip_and_reopen() {
        let dir = temp_dir("history");
        let db = dir.join(".camwatch/history.sqlite");
        let setting = Setting {
            prep: "imagenet@224".into(),
            layer: "stage4".into(),
            target: "predicted".into(),
            steps: 16,
        };
        let row = CheckpointRow {
            path: dir.join("epoch_1.pdparams"),
            hash: "abc".into(),
            fingerprint: Fingerprint {
                size: 10,
                mtime_ns: 5,
            },
            epoch: Some(1),
            status: Status::Ok,
            error: None,
            format: Some("pdparams".into()),
            arch: None,
            origin: None,
        };
        let sample = StoredSample {
            prediction: Some(Prediction {
                logits: vec![1.0, -2.5],
                probs: vec![0.97, 0.03],
                predicted: 0,
            }),
            maps: vec![StoredMap {
                method: Method::GradCam,
                class: 0,
                map: Map {
                    height: 1,
                    width: 2,
                    values: vec![0.5, 0.25],
                },
                on_object: Some(("0,0,4,4".into(), 0.75, true)),
            }],
            trust: SampleTrust::default(),
        };
        {
            let mut history = History::open(&db, &dir).unwrap();
            history
                .record(&row, &setting, &[("s1".into(), sample.clone())])
                .unwrap();
            // Recording the same file and content again replaces, never duplicates.
            history
                .record(&row, &setting, &[("s1".into(), sample.clone())])
                .unwrap();
        }
        let history = History::open(&db, &dir).unwrap();
        assert_eq!(history.checkpoints().unwrap(), vec![row]);
        let stored = history
            .results("abc", &setting, &["s1".into(), "s2".into()])
            .unwrap();
        assert_eq!(stored, vec![sample, StoredSample::default()]);
        let other = Setting {
            layer: "stage3".into(),
            ..setting.clone()
        };
        assert!(
            history.results("abc", &other, &["s1".into()]).unwrap()[0]
                .maps
                .is_empty()
        );

        // Trust figures come later, and deletion's depend on its steps.
        let mut history = History::open(&db, &dir).unwrap();
        let mut trust = SampleTrust::default();
        trust.metrics.insert(
            Method::GradCam,
            Faithfulness {
                deletion_auc: Some(0.25),
                road_combined: Some(-0.5),
                ..Default::default()
            },
        );
        trust.sanity.insert(
            Method::GradCam,
            Sanity {
                class_corr: Some(0.1),
                random_corr: None,
            },
        );
        history
            .record_trust("abc", &setting, &[("s1".into(), trust.clone())])
            .unwrap();
        let stored = history.results("abc", &setting, &["s1".into()]).unwrap();
        assert_eq!(stored[0].trust, trust);
        let fewer_steps = Setting {
            steps: 8,
            ..setting
        };
        let stored = history
            .results("abc", &fewer_steps, &["s1".into()])
            .unwrap();
        assert_eq!(stored[0].trust.metrics[&Method::GradCam].deletion_auc, None);
        assert_eq!(
            stored[0].trust.metrics[&Method::GradCam].road_combined,
            Some(-0.5)
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }
}

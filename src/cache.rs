//! The on-disk cache.
//!
//! ```text
//! cache/
//!   entries/<k[0..2]>/<key>/      one directory per node output
//!       manifest.json             key, node, components, blake3 of every file
//!       <files>                   .npy arrays, tables, plots
//!   locks/<key>.lock              one lock per entry (advisory, released when the process dies)
//!   nodes/<hash>.json             the components last computed for each (experiment, node id)
//!   runs/<time>-<pid>.jsonl       one run log per exec
//!   runs/<time>-<pid>.live        the keys a running exec uses (locked while it runs)
//!   gc.lock                       gc holds it exclusively; an exec shares it while registering
//! ```
//!
//! `gc` never deletes an entry an exec in flight uses: every exec registers
//! its keys in a `.live` file, locked for the exec's lifetime, before it
//! touches an entry, and registration waits while a gc pass runs. A `.live`
//! file whose lock is free belongs to a dead exec and is removed.
//!
//! An entry is built in a temp directory next to its final place and renamed
//! into place only once every file and the manifest are synced, so a reader
//! sees either nothing or a whole entry, whenever a writer dies. Readers hash
//! every byte they read against the manifest.

use std::collections::BTreeMap;
use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

use crate::error::{Error, IoContext, Result};
use crate::key::KeyComponents;
use crate::npy;

#[derive(Debug, Clone)]
pub struct Cache {
    pub root: PathBuf,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct FileRecord {
    pub blake3: String,
    pub bytes: u64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Manifest {
    pub key: String,
    pub node: String,
    pub experiment: String,
    pub components: KeyComponents,
    pub files: BTreeMap<String, FileRecord>,
    pub created_unix: u64,
    pub compute_seconds: f64,
}

/// Why an entry cannot be used.
#[derive(Debug, Clone, PartialEq)]
pub enum EntryState {
    Valid,
    Missing,
    Corrupt(String),
}

pub fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or(Duration::ZERO)
        .as_secs()
}

/// Writes `bytes` to `path` atomically: temp file in the same directory, fsync, rename.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    fs::create_dir_all(dir).at(dir)?;
    // 0644 rather than tempfile's private 0600: results are meant to be shared.
    let mut tmp = tempfile::Builder::new()
        .prefix(".tmp-")
        .permissions(std::os::unix::fs::PermissionsExt::from_mode(0o644))
        .tempfile_in(dir)
        .at(dir)?;
    tmp.write_all(bytes).at(path)?;
    tmp.as_file().sync_all().at(path)?;
    tmp.persist(path).map_err(|e| Error::io(path, e.error))?;
    Ok(())
}

/// Opens (creating it if needed) a file used only for its advisory lock.
pub(crate) fn lock_file(path: &Path) -> Result<File> {
    OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(path)
        .at(path)
}

pub(crate) fn sync_dir(dir: &Path) {
    // Makes the rename durable; failure only weakens crash safety, never correctness.
    if let Ok(d) = File::open(dir) {
        let _ = d.sync_all();
    }
}

/// A held entry lock; dropping it (or the process dying) releases it.
pub struct EntryLock {
    _file: File,
}

impl EntryLock {
    /// A lock already taken on `file`.
    pub(crate) fn from_file(file: File) -> EntryLock {
        EntryLock { _file: file }
    }
}

/// A content key: 64 lowercase hex digits (a blake3).
pub fn is_key(name: &str) -> bool {
    name.len() == 64 && name.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

/// An exec's registration; dropping it (or the process dying) releases it.
pub struct LiveRun {
    _file: File,
    path: PathBuf,
}

impl Drop for LiveRun {
    fn drop(&mut self) {
        let _ = fs::remove_file(&self.path);
    }
}

/// The process id in a run file's name, `<time>-<pid>.<ext>` (run logs and
/// registrations alike).
pub fn pid_in_name(path: &Path) -> Option<u32> {
    path.file_stem()?.to_str()?.rsplit('-').next()?.parse().ok()
}

/// An entry's key, size in bytes and last-use time.
pub type EntryInfo = (String, u64, SystemTime);

/// Something in `entries/` that is neither an entry nor a writer's temp dir.
#[derive(Debug, Clone)]
pub struct Stray {
    pub path: PathBuf,
}

impl Cache {
    /// A cache for reading only: nothing is created, so a mistyped `--cache`
    /// leaves no empty directories behind.
    pub fn at(root: &Path) -> Cache {
        Cache {
            root: root.to_path_buf(),
        }
    }

    pub fn exists(&self) -> bool {
        self.root.join("entries").is_dir()
    }

    /// The error for commands that need a cache that is not there.
    pub fn missing(&self) -> Error {
        Error::usage(format!("no cache at {}", self.root.display())).with_help(
            "check --cache (or RUNNER_CACHE / the experiment's `cache`); `runner exec` creates it",
        )
    }

    fn gc_lock_file(&self) -> Result<File> {
        lock_file(&self.root.join("gc.lock"))
    }

    /// Registers the keys an exec is about to use, so that a concurrent gc
    /// keeps them. Waits while a gc pass is running.
    pub fn register_live(&self, keys: &[String]) -> Result<LiveRun> {
        let gc = self.gc_lock_file()?;
        gc.lock_shared().at(self.root.join("gc.lock"))?;
        let stamp = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or(Duration::ZERO)
            .as_nanos();
        let path = self
            .runs_dir()
            .join(format!("{stamp}-{}.live", std::process::id()));
        let mut file = File::create(&path).at(&path)?;
        file.lock().at(&path)?;
        file.write_all(&serde_json::to_vec(keys).expect("keys serialize"))
            .at(&path)?;
        file.sync_all().at(&path)?;
        drop(gc);
        Ok(LiveRun { _file: file, path })
    }

    /// Holds the gc lock: no exec can register while it is held.
    pub fn gc_pass(&self) -> Result<EntryLock> {
        let file = self.gc_lock_file()?;
        file.lock().at(self.root.join("gc.lock"))?;
        Ok(EntryLock { _file: file })
    }

    /// Process ids of the execs in flight (their registration is locked).
    /// Looks only: nothing is removed.
    pub fn running_pids(&self) -> std::collections::HashSet<u32> {
        let mut pids = std::collections::HashSet::new();
        for e in fs::read_dir(self.runs_dir())
            .into_iter()
            .flatten()
            .flatten()
        {
            let p = e.path();
            if p.extension().is_none_or(|x| x != "live") {
                continue;
            }
            let pid = pid_in_name(&p);
            let Ok(f) = OpenOptions::new().read(true).open(&p) else {
                continue;
            };
            if let (Some(pid), Err(fs::TryLockError::WouldBlock)) = (pid, f.try_lock_shared()) {
                pids.insert(pid);
            }
        }
        pids
    }

    /// Keys used by execs in flight (call while holding [`Cache::gc_pass`]).
    /// Registrations of dead execs are removed.
    pub fn live_keys(&self) -> Result<std::collections::HashSet<String>> {
        let mut keys = std::collections::HashSet::new();
        let runs = self.runs_dir();
        for e in fs::read_dir(&runs).at(&runs)?.flatten() {
            let p = e.path();
            if p.extension().is_none_or(|x| x != "live") {
                continue;
            }
            let Ok(f) = OpenOptions::new().read(true).write(true).open(&p) else {
                continue;
            };
            match f.try_lock() {
                Ok(()) => {
                    let _ = fs::remove_file(&p);
                }
                Err(fs::TryLockError::WouldBlock) => {
                    let bytes = fs::read(&p).at(&p)?;
                    let list: Vec<String> =
                        serde_json::from_slice(&bytes).map_err(|e| Error::Cache {
                            dir: self.root.clone(),
                            message: format!(
                                "{}: unreadable registration of a running exec: {e}",
                                p.display()
                            ),
                        })?;
                    keys.extend(list);
                }
                Err(fs::TryLockError::Error(e)) => return Err(Error::io(&p, e)),
            }
        }
        Ok(keys)
    }

    pub fn open(root: &Path) -> Result<Cache> {
        for sub in ["entries", "locks", "nodes", "runs", "work"] {
            let d = root.join(sub);
            fs::create_dir_all(&d).at(&d)?;
        }
        Ok(Cache {
            root: root.to_path_buf(),
        })
    }

    pub fn entry_dir(&self, key: &str) -> PathBuf {
        debug_assert!(is_key(key), "not a key: {key:?}");
        self.root
            .join("entries")
            .join(key.get(..2).unwrap_or("__"))
            .join(key)
    }

    /// A node's resumable scratch state (training checkpoints), kept across
    /// killed runs and removed after the entry is committed.
    pub fn work_dir(&self, key: &str) -> PathBuf {
        self.root.join("work").join(key)
    }

    pub fn runs_dir(&self) -> PathBuf {
        self.root.join("runs")
    }

    /// Refuses a cache whose filesystem cannot lock (see [`crate::shared_fs`]).
    pub fn check_locking(&self) -> Result<()> {
        crate::shared_fs::check_locking(&self.root)
    }

    /// Blocks until this process holds the entry's lock.
    pub fn lock(&self, key: &str) -> Result<EntryLock> {
        let path = self.root.join("locks").join(format!("{key}.lock"));
        let file = lock_file(&path)?;
        file.lock().at(&path)?;
        Ok(EntryLock { _file: file })
    }

    /// Takes the entry's lock only if nobody holds it (used by gc).
    pub fn try_lock(&self, key: &str) -> Result<Option<EntryLock>> {
        let path = self.root.join("locks").join(format!("{key}.lock"));
        let file = lock_file(&path)?;
        match file.try_lock() {
            Ok(()) => Ok(Some(EntryLock { _file: file })),
            Err(fs::TryLockError::WouldBlock) => Ok(None),
            Err(fs::TryLockError::Error(e)) => Err(Error::io(&path, e)),
        }
    }

    pub fn manifest(&self, key: &str) -> Option<Manifest> {
        let text = fs::read(self.entry_dir(key).join("manifest.json")).ok()?;
        serde_json::from_slice(&text).ok()
    }

    /// Cheap check (no hashing): is there a complete entry for this key?
    pub fn present(&self, key: &str) -> bool {
        self.entry_dir(key).join("manifest.json").is_file()
    }

    /// Full check: every file exists and hashes to what the manifest says.
    pub fn verify(&self, key: &str) -> EntryState {
        let dir = self.entry_dir(key);
        let mpath = dir.join("manifest.json");
        let bytes = match fs::read(&mpath) {
            Ok(b) => b,
            Err(_) if !dir.exists() => return EntryState::Missing,
            Err(e) => return EntryState::Corrupt(format!("manifest unreadable: {e}")),
        };
        let m: Manifest = match serde_json::from_slice(&bytes) {
            Ok(m) => m,
            Err(e) => return EntryState::Corrupt(format!("manifest is not valid JSON: {e}")),
        };
        if m.key != key || m.components.key() != key {
            return EntryState::Corrupt("manifest does not describe this key".into());
        }
        for (name, rec) in &m.files {
            let p = dir.join(name);
            match crate::key::hash_file(&p) {
                Ok(h) if h == rec.blake3 => {}
                Ok(_) => {
                    return EntryState::Corrupt(format!("{name}: bytes do not match their blake3"));
                }
                Err(_) => return EntryState::Corrupt(format!("{name}: missing")),
            }
        }
        EntryState::Valid
    }

    /// Opens an entry for reading; each read is verified against the manifest.
    pub fn open_entry(&self, key: &str) -> Result<Entry> {
        let dir = self.entry_dir(key);
        let manifest = self.manifest(key).ok_or_else(|| Error::Cache {
            dir: dir.clone(),
            message: "entry is missing or its manifest is unreadable".into(),
        })?;
        Ok(Entry { dir, manifest })
    }

    /// Moves a corrupt entry out of the way (then deletes it) so it can be rebuilt.
    /// The caller holds the entry's lock.
    pub fn discard(&self, key: &str) -> Result<()> {
        let dir = self.entry_dir(key);
        if !dir.exists() {
            return Ok(());
        }
        let parent = dir.parent().unwrap();
        let aside = parent.join(format!(".discard-{key}-{}", std::process::id()));
        fs::rename(&dir, &aside).at(&dir)?;
        sync_dir(parent);
        fs::remove_dir_all(&aside).at(&aside)?;
        Ok(())
    }

    /// Starts building an entry. The caller holds the entry's lock.
    pub fn writer(&self, key: &str) -> Result<EntryWriter> {
        let final_dir = self.entry_dir(key);
        let parent = final_dir.parent().unwrap().to_path_buf();
        fs::create_dir_all(&parent).at(&parent)?;
        let tmp = tempfile::Builder::new()
            .prefix(&format!(".tmp-{key}-"))
            .tempdir_in(&parent)
            .at(&parent)?;
        Ok(EntryWriter {
            key: key.to_string(),
            tmp,
            final_dir,
        })
    }

    /// Marks an entry as used now, for `gc --keep-recent`.
    pub fn touch(&self, key: &str) {
        let p = self.entry_dir(key).join("manifest.json");
        if let Ok(f) = File::options().write(true).open(&p) {
            let _ = f.set_modified(SystemTime::now());
        }
    }

    fn node_record_path(&self, experiment: &str, node: &str) -> PathBuf {
        let h = blake3::hash(format!("{experiment}\0{node}").as_bytes()).to_hex();
        self.root.join("nodes").join(format!("{}.json", &h[..32]))
    }

    /// Remembers what this node was last computed from, so `plan` and
    /// `explain` can say what changed.
    pub fn record_node(&self, experiment: &str, node: &str, comps: &KeyComponents) -> Result<()> {
        let path = self.node_record_path(experiment, node);
        let bytes = serde_json::to_vec_pretty(comps).expect("components serialize");
        if fs::read(&path).is_ok_and(|old| old == bytes) {
            return Ok(());
        }
        write_atomic(&path, &bytes)
    }

    pub fn last_components(&self, experiment: &str, node: &str) -> Option<KeyComponents> {
        let bytes = fs::read(self.node_record_path(experiment, node)).ok()?;
        serde_json::from_slice(&bytes).ok()
    }

    /// Every entry key present, with its size in bytes and last-use time.
    pub fn list(&self) -> Result<Vec<EntryInfo>> {
        Ok(self.scan()?.0)
    }

    /// Entries, and everything else found in `entries/` that is neither an
    /// entry nor a temp dir of a writer (see [`Cache::leftovers`]).
    pub fn scan(&self) -> Result<(Vec<EntryInfo>, Vec<Stray>)> {
        let mut out = Vec::new();
        let mut strays = Vec::new();
        let entries = self.root.join("entries");
        if !entries.is_dir() {
            return Ok((out, strays));
        }
        for shard in fs::read_dir(&entries).at(&entries)? {
            let shard = shard.at(&entries)?;
            let shard_name = shard.file_name().to_string_lossy().to_string();
            let shard = shard.path();
            let is_shard = shard_name.len() == 2 && is_key(&format!("{shard_name:0<64}"));
            if !shard.is_dir() || !is_shard {
                strays.push(Stray { path: shard });
                continue;
            }
            for e in fs::read_dir(&shard).at(&shard)? {
                let e = e.at(&shard)?;
                let name = e.file_name().to_string_lossy().to_string();
                if name.starts_with(".tmp-") || name.starts_with(".discard-") {
                    continue;
                }
                if !is_key(&name) || !name.starts_with(&shard_name) || !e.path().is_dir() {
                    strays.push(Stray { path: e.path() });
                    continue;
                }
                let mut size = 0;
                if let Ok(files) = fs::read_dir(e.path()) {
                    for f in files.flatten() {
                        size += f.metadata().map(|m| m.len()).unwrap_or(0);
                    }
                }
                let used = fs::metadata(e.path().join("manifest.json"))
                    .and_then(|m| m.modified())
                    .unwrap_or(UNIX_EPOCH);
                out.push((name, size, used));
            }
        }
        out.sort();
        strays.sort_by(|a, b| a.path.cmp(&b.path));
        Ok((out, strays))
    }

    /// Temp dirs (and files) left by killed runs: `.tmp-<key>-…` of a writer,
    /// `.discard-<key>-…` of a discard. Safe to delete once the key's lock is free.
    pub fn leftovers(&self) -> Result<Vec<PathBuf>> {
        let mut out = Vec::new();
        let entries = self.root.join("entries");
        if !entries.is_dir() {
            return Ok(out);
        }
        for shard in fs::read_dir(&entries).at(&entries)?.flatten() {
            if let Ok(items) = fs::read_dir(shard.path()) {
                for e in items.flatten() {
                    let n = e.file_name().to_string_lossy().to_string();
                    if n.starts_with(".tmp-") || n.starts_with(".discard-") {
                        out.push(e.path());
                    }
                }
            }
        }
        out.sort();
        Ok(out)
    }
}

/// A complete entry opened for reading.
pub struct Entry {
    pub dir: PathBuf,
    pub manifest: Manifest,
}

impl Entry {
    /// The bytes of one file, verified against the manifest's blake3.
    pub fn read(&self, name: &str) -> Result<Vec<u8>> {
        let rec = self.manifest.files.get(name).ok_or_else(|| Error::Cache {
            dir: self.dir.clone(),
            message: format!("entry has no file `{name}`"),
        })?;
        let path = self.dir.join(name);
        let bytes = fs::read(&path).at(&path)?;
        let mut h = blake3::Hasher::new();
        h.update_rayon(&bytes);
        if h.finalize().to_hex().as_str() != rec.blake3 {
            return Err(Error::Cache {
                dir: self.dir.clone(),
                message: format!(
                    "`{name}` is corrupt: its bytes do not match the stored blake3; run exec again to rebuild it"
                ),
            });
        }
        Ok(bytes)
    }

    /// Checks one file against the manifest without holding it in memory
    /// (for readers that then stream it in batches).
    pub fn verify_file(&self, name: &str) -> Result<()> {
        let rec = self.manifest.files.get(name).ok_or_else(|| Error::Cache {
            dir: self.dir.clone(),
            message: format!("entry has no file `{name}`"),
        })?;
        let path = self.dir.join(name);
        let mut h = blake3::Hasher::new();
        h.update_mmap_rayon(&path).at(&path)?;
        if h.finalize().to_hex().as_str() != rec.blake3 {
            return Err(Error::Cache {
                dir: self.dir.clone(),
                message: format!(
                    "`{name}` is corrupt: its bytes do not match the stored blake3; run exec again to rebuild it"
                ),
            });
        }
        Ok(())
    }

    pub fn read_f64(&self, name: &str) -> Result<npy::Array<f64>> {
        let bytes = self.read(name)?;
        npy::parse_f64(&bytes).map_err(|e| Error::Cache {
            dir: self.dir.clone(),
            message: format!("`{name}`: {e}"),
        })
    }

    pub fn read_f32(&self, name: &str) -> Result<npy::Array<f32>> {
        let bytes = self.read(name)?;
        npy::parse_f32(&bytes).map_err(|e| Error::Cache {
            dir: self.dir.clone(),
            message: format!("`{name}`: {e}"),
        })
    }

    pub fn read_json<T: serde::de::DeserializeOwned>(&self, name: &str) -> Result<T> {
        let bytes = self.read(name)?;
        serde_json::from_slice(&bytes).map_err(|e| Error::Cache {
            dir: self.dir.clone(),
            message: format!("`{name}`: {e}"),
        })
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.join(name)
    }
}

/// An entry being built in a temp directory.
pub struct EntryWriter {
    key: String,
    tmp: tempfile::TempDir,
    final_dir: PathBuf,
}

impl EntryWriter {
    pub fn path(&self, name: &str) -> PathBuf {
        self.tmp.path().join(name)
    }

    pub fn write_bytes(&self, name: &str, bytes: &[u8]) -> Result<()> {
        let p = self.path(name);
        fs::write(&p, bytes).at(&p)
    }

    pub fn write_json<T: Serialize>(&self, name: &str, value: &T) -> Result<()> {
        let bytes = serde_json::to_vec_pretty(value).expect("serializable");
        self.write_bytes(name, &bytes)
    }

    pub fn write_npy<T: npyz::AutoSerialize + Clone>(
        &self,
        name: &str,
        shape: &[usize],
        data: &[T],
    ) -> Result<()> {
        let p = self.path(name);
        npy::write(&p, shape, data).at(&p)
    }

    /// Hashes and syncs every file, writes the manifest, and renames the
    /// directory into place. Nothing is visible to readers before the rename.
    pub fn commit(
        self,
        node: &str,
        experiment: &str,
        components: &KeyComponents,
        compute_seconds: f64,
    ) -> Result<()> {
        let mut files = BTreeMap::new();
        for e in fs::read_dir(self.tmp.path()).at(self.tmp.path())? {
            let e = e.at(self.tmp.path())?;
            let name = e.file_name().to_string_lossy().to_string();
            let p = e.path();
            File::open(&p).and_then(|f| f.sync_all()).at(&p)?;
            files.insert(
                name,
                FileRecord {
                    blake3: crate::key::hash_file(&p)?,
                    bytes: e.metadata().at(&p)?.len(),
                },
            );
        }
        let manifest = Manifest {
            key: self.key.clone(),
            node: node.to_string(),
            experiment: experiment.to_string(),
            components: components.clone(),
            files,
            created_unix: unix_now(),
            compute_seconds,
        };
        let mpath = self.path("manifest.json");
        let mut f = File::create(&mpath).at(&mpath)?;
        f.write_all(&serde_json::to_vec_pretty(&manifest).expect("manifest serializes"))
            .at(&mpath)?;
        f.sync_all().at(&mpath)?;
        sync_dir(self.tmp.path());
        let tmp = self.tmp.keep();
        if let Err(e) = fs::rename(&tmp, &self.final_dir) {
            let _ = fs::remove_dir_all(&tmp);
            if !self.final_dir.join("manifest.json").exists() {
                return Err(Error::io(&self.final_dir, e));
            }
        }
        sync_dir(self.final_dir.parent().unwrap());
        Ok(())
    }
}

//! Helpers shared by the integration tests.

use std::path::{Path, PathBuf};

/// The cache directory of the node `runner explain` printed (its `key:` line).
pub fn entry_dir(explain_stdout: &[u8], cache: &Path) -> PathBuf {
    let text = String::from_utf8_lossy(explain_stdout);
    let key = text
        .lines()
        .find_map(|l| l.strip_prefix("key:"))
        .expect("explain prints the key")
        .trim()
        .to_string();
    cache.join("entries").join(&key[..2]).join(key)
}

//! Node keys. A key is blake3 over a canonical JSON of everything that can
//! change a node's output: its kind, its code version, its parameters, the
//! keys of the nodes it reads and the bytes of the files it reads. Names,
//! paths, comments and the order of TOML tables are deliberately left out.

use std::collections::BTreeMap;
use std::path::Path;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::error::{IoContext, Result};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct KeyComponents {
    pub kind: String,
    pub code_version: String,
    pub params: Value,
    /// role → upstream node key
    pub upstream: BTreeMap<String, String>,
    /// role → blake3 of the external file's bytes
    pub inputs: BTreeMap<String, String>,
}

impl KeyComponents {
    pub fn key(&self) -> String {
        let v = serde_json::to_value(self).expect("key components serialize");
        blake3::hash(canonical_json(&v).as_bytes())
            .to_hex()
            .to_string()
    }

    /// What differs from an earlier set of components, in words, most basic first.
    pub fn diff(&self, old: &KeyComponents) -> Vec<String> {
        let mut out = Vec::new();
        if self.kind != old.kind {
            out.push(format!("kind changed ({} → {})", old.kind, self.kind));
        }
        if self.code_version != old.code_version {
            out.push(format!(
                "code version changed ({} → {})",
                old.code_version, self.code_version
            ));
        }
        if self.params != old.params {
            let changed = changed_fields(&old.params, &self.params);
            out.push(format!("params changed: {}", changed.join(", ")));
        }
        for (role, (o, n)) in [
            ("input", (&old.inputs, &self.inputs)),
            ("upstream", (&old.upstream, &self.upstream)),
        ] {
            let mut changes = Vec::new();
            for (k, v) in n {
                match o.get(k) {
                    None => changes.push(format!("new {role} `{k}`")),
                    Some(ov) if ov != v => changes.push(format!(
                        "{role} `{k}` changed ({} → {})",
                        short(ov),
                        short(v)
                    )),
                    _ => {}
                }
            }
            for k in o.keys().filter(|k| !n.contains_key(*k)) {
                changes.push(format!("{role} `{k}` removed"));
            }
            // A table reads dozens of nodes: summarise rather than list them all.
            if changes.len() > 3 {
                let first: Vec<&str> = changes.iter().take(2).map(String::as_str).collect();
                out.push(format!(
                    "{} {role} changes ({}; …)",
                    changes.len(),
                    first.join("; ")
                ));
            } else {
                out.extend(changes);
            }
        }
        out
    }
}

pub fn short(hash: &str) -> &str {
    &hash[..hash.len().min(12)]
}

fn changed_fields(old: &Value, new: &Value) -> Vec<String> {
    match (old, new) {
        (Value::Object(o), Value::Object(n)) => {
            let mut keys: Vec<&String> = o.keys().chain(n.keys()).collect();
            keys.sort();
            keys.dedup();
            keys.into_iter()
                .filter(|k| o.get(*k) != n.get(*k))
                .map(|k| k.to_string())
                .collect()
        }
        _ => vec!["(value)".into()],
    }
}

/// JSON with object keys sorted at every level and no whitespace, so equal
/// values always give equal bytes whatever map type produced them.
pub fn canonical_json(v: &Value) -> String {
    let mut s = String::new();
    write_canonical(v, &mut s);
    s
}

fn write_canonical(v: &Value, out: &mut String) {
    match v {
        Value::Object(map) => {
            let mut keys: Vec<&String> = map.keys().collect();
            keys.sort();
            out.push('{');
            for (i, k) in keys.into_iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                out.push_str(&Value::String(k.clone()).to_string());
                out.push(':');
                write_canonical(&map[k], out);
            }
            out.push('}');
        }
        Value::Array(items) => {
            out.push('[');
            for (i, x) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_canonical(x, out);
            }
            out.push(']');
        }
        other => out.push_str(&other.to_string()),
    }
}

/// blake3 of a file's bytes (memory-mapped and multi-threaded for big feature files).
pub fn hash_file(path: &Path) -> Result<String> {
    let mut h = blake3::Hasher::new();
    h.update_mmap_rayon(path).at(path)?;
    Ok(h.finalize().to_hex().to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use serde_json::json;

    fn comp(params: Value) -> KeyComponents {
        KeyComponents {
            kind: "fit".into(),
            code_version: "1".into(),
            params,
            upstream: BTreeMap::from([("decompose".into(), "aa".into())]),
            inputs: BTreeMap::new(),
        }
    }

    #[test]
    fn diff_names_the_changed_param() {
        let a = comp(json!({"alpha_grid": [1.0], "alpha_per_voxel": false}));
        let b = comp(json!({"alpha_grid": [1.0, 10.0], "alpha_per_voxel": false}));
        assert_ne!(a.key(), b.key());
        assert_eq!(b.diff(&a), vec!["params changed: alpha_grid".to_string()]);
    }

    proptest! {
        // Key order inside params must never matter (TOML table order).
        #[test]
        fn key_ignores_object_key_order(pairs in proptest::collection::btree_map("[a-z]{1,6}", 0i64..100, 1..8)) {
            let forward: serde_json::Map<String, Value> = pairs.iter().map(|(k, v)| (k.clone(), json!(v))).collect();
            let mut rev_pairs: Vec<_> = pairs.iter().collect();
            rev_pairs.reverse();
            let reverse: serde_json::Map<String, Value> = rev_pairs.into_iter().map(|(k, v)| (k.clone(), json!(v))).collect();
            prop_assert_eq!(comp(Value::Object(forward)).key(), comp(Value::Object(reverse)).key());
        }

        #[test]
        fn distinct_params_give_distinct_keys(a in 0i64..1000, b in 0i64..1000) {
            prop_assume!(a != b);
            prop_assert_ne!(comp(json!({"x": a})).key(), comp(json!({"x": b})).key());
        }
    }
}

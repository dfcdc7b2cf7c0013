//! Time limits from measured history: how long each node of an experiment
//! took when it last ran (locally or on Slurm), from the run logs in the
//! cache. A node that ran before in the same experiment asks for three times
//! its longest run (at least 5 minutes) instead of its kind's guess; a node
//! never seen keeps the profile's or the class's limit.
//!
//! History is kept per (experiment, node id), not per kind: a fit of 40
//! test images says nothing about a fit of 10,000.

use std::collections::HashMap;
use std::path::Path;

/// The slowest run of each (experiment, node id), in seconds.
#[derive(Debug, Default, Clone)]
pub struct History {
    seconds: HashMap<(String, String), f64>,
}

/// The newest run logs read (older ones rarely change the answer).
const LOGS: usize = 200;
/// Three times the slowest run seen, and never under 5 minutes.
const FACTOR: f64 = 3.0;
const FLOOR_S: u64 = 300;

impl History {
    pub fn read(runs_dir: &Path) -> History {
        let mut logs: Vec<_> = std::fs::read_dir(runs_dir)
            .into_iter()
            .flatten()
            .flatten()
            .map(|e| e.path())
            .filter(|p| p.extension().is_some_and(|x| x == "jsonl"))
            .collect();
        logs.sort();
        let mut h = History::default();
        for log in logs.iter().rev().take(LOGS) {
            h.add_log(&std::fs::read_to_string(log).unwrap_or_default());
        }
        h
    }

    /// One run log's text: its experiment from the `start` line, then every
    /// node it computed.
    pub fn add_log(&mut self, text: &str) {
        let mut experiment = String::new();
        for line in text.lines() {
            let Ok(v) = serde_json::from_str::<serde_json::Value>(line) else {
                continue;
            };
            match v["event"].as_str() {
                Some("start") => experiment = v["experiment"].as_str().unwrap_or("").to_string(),
                Some("node") if matches!(v["outcome"].as_str(), Some("ran" | "recomputed")) => {
                    let (Some(node), Some(s)) = (v["node"].as_str(), v["seconds"].as_f64()) else {
                        continue;
                    };
                    let e = self
                        .seconds
                        .entry((experiment.clone(), node.to_string()))
                        .or_insert(0.0);
                    *e = e.max(s);
                }
                _ => {}
            }
        }
    }

    /// The time limit history suggests for this node, if it ran before.
    pub fn limit(&self, experiment: &str, node: &str) -> Option<u64> {
        let s = self
            .seconds
            .get(&(experiment.to_string(), node.to_string()))?;
        Some(((s * FACTOR).ceil() as u64).max(FLOOR_S))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_slowest_run_of_the_same_node_of_the_same_experiment_counts() {
        let mut h = History::default();
        h.add_log(
            r#"{"event":"start","experiment":"hw2"}
{"event":"node","node":"fit/a","outcome":"ran","seconds":400.0}
{"event":"node","node":"fit/b","outcome":"reused","seconds":0.1}
{"event":"node","node":"fit/c","outcome":"failed","seconds":9000.0}
{"event":"node","node":"fit/d","outcome":"ran","seconds":2.0}
not json"#,
        );
        h.add_log(
            "{\"event\":\"start\",\"experiment\":\"hw2\"}\n{\"event\":\"node\",\"node\":\"fit/a\",\"outcome\":\"ran\",\"seconds\":700.5}\n",
        );
        h.add_log(
            "{\"event\":\"start\",\"experiment\":\"other\"}\n{\"event\":\"node\",\"node\":\"fit/b\",\"outcome\":\"ran\",\"seconds\":1000}\n",
        );
        assert_eq!(h.limit("hw2", "fit/a"), Some(2102));
        assert_eq!(h.limit("hw2", "fit/d"), Some(300), "at least 5 minutes");
        assert_eq!(h.limit("hw2", "fit/b"), None, "reused is not a run");
        assert_eq!(h.limit("hw2", "fit/c"), None, "a failure says nothing");
        assert_eq!(h.limit("other", "fit/b"), Some(3000));
        assert_eq!(h.limit("other", "fit/a"), None);
    }
}

//! The DAG of keyed nodes: how nodes are added (and shared when two analyses
//! ask for the same computation), their order, and their freshness against
//! the cache. What the nodes are comes from [`crate::compile`].
//!
//! Granularity is chosen so that the usual edits reuse everything else:
//! adding a layer adds one decomposition and its fits; adding an ROI adds one
//! `roi` and its fits; changing the α grid re-runs fits, scores, the table and
//! plots, never an extraction or a decomposition; adding an analysis reuses
//! every extraction and any decomposition it shares with the others.

use std::collections::{BTreeMap, HashMap};

use petgraph::graph::{DiGraph, NodeIndex};
use petgraph::visit::EdgeRef;

use crate::cache::Cache;
use crate::config::Experiment;
use crate::error::{Error, Result};
use crate::key::KeyComponents;
use crate::node::NodeKind;

pub struct Node {
    pub id: String,
    pub task: Box<dyn NodeKind>,
    pub components: KeyComponents,
    pub key: String,
    /// Rough peak memory, so the executor does not run two giants at once.
    pub mem_bytes: u64,
}

pub struct Plan {
    pub experiment: Experiment,
    /// Edges point from an upstream node to the node reading it; the weight is the role.
    pub graph: DiGraph<Node, String>,
    pub by_id: HashMap<String, NodeIndex>,
    /// Nodes whose files are the experiment's results, copied to
    /// `results_dir` under the node's result names with a file-name prefix.
    pub outputs: Vec<(NodeIndex, String)>,
    /// Things that are probably mistakes but not errors, said by plan and exec.
    pub warnings: Vec<String>,
}

/// Freshness of a node against the cache, with the reason when stale.
#[derive(Debug, Clone, PartialEq)]
pub enum Freshness {
    Fresh,
    Stale(String),
}

pub fn natural_key(s: &str) -> (String, u64, String) {
    // "V10" sorts after "V2": split a trailing/leading number out.
    let prefix: String = s.chars().take_while(|c| !c.is_ascii_digit()).collect();
    let digits: String = s[prefix.len()..]
        .chars()
        .take_while(|c| c.is_ascii_digit())
        .collect();
    let rest = s[prefix.len() + digits.len()..].to_string();
    (prefix, digits.parse().unwrap_or(0), rest)
}

/// The graph being built. A node whose key is already there is not added
/// twice: two analyses asking for the same decomposition share one node.
#[derive(Default)]
pub struct Graph {
    pub graph: DiGraph<Node, String>,
    pub by_id: HashMap<String, NodeIndex>,
    by_key: HashMap<String, NodeIndex>,
}

impl Graph {
    pub fn add(
        &mut self,
        id: String,
        task: impl NodeKind + 'static,
        upstream: Vec<(String, NodeIndex)>,
        inputs: BTreeMap<String, String>,
    ) -> NodeIndex {
        let components = KeyComponents {
            kind: task.kind().to_string(),
            code_version: format!("{}-{}", task.kind(), task.version()),
            params: task.params(),
            upstream: upstream
                .iter()
                .map(|(role, ix)| (role.clone(), self.graph[*ix].key.clone()))
                .collect(),
            inputs,
        };
        let key = components.key();
        if let Some(&ix) = self.by_key.get(&key) {
            return ix;
        }
        // The same id with other parameters (two analyses decomposing one
        // layer differently): tell them apart by their keys.
        let id = if self.by_id.contains_key(&id) {
            format!("{id}#{}", &key[..8])
        } else {
            id
        };
        let mem_bytes = task.mem_bytes();
        let ix = self.graph.add_node(Node {
            id: id.clone(),
            task: Box::new(task),
            components,
            key: key.clone(),
            mem_bytes,
        });
        for (role, up) in upstream {
            self.graph.add_edge(up, ix, role);
        }
        self.by_id.insert(id, ix);
        self.by_key.insert(key, ix);
        ix
    }

    pub fn key(&self, ix: NodeIndex) -> &str {
        &self.graph[ix].key
    }
}

impl Plan {
    /// Nodes in an order where every node comes after its inputs.
    pub fn topo(&self) -> Vec<NodeIndex> {
        // Nodes are added after their inputs, so insertion order is topological
        // (and reads naturally: subject, rois, then each layer's chain).
        debug_assert!(!petgraph::algo::is_cyclic_directed(&self.graph));
        self.graph.node_indices().collect()
    }

    pub fn upstream(&self, ix: NodeIndex) -> Vec<(String, NodeIndex)> {
        let mut v: Vec<(String, NodeIndex)> = self
            .graph
            .edges_directed(ix, petgraph::Direction::Incoming)
            .map(|e| (e.weight().clone(), e.source()))
            .collect();
        v.sort();
        v
    }

    /// Is the node's entry in the cache, and if not, why not? Cheap: no hashing.
    pub fn freshness(&self, cache: &Cache, ix: NodeIndex) -> Freshness {
        let node = &self.graph[ix];
        if cache.present(&node.key) {
            return Freshness::Fresh;
        }
        match cache.last_components(&self.experiment.name, &node.id) {
            None => Freshness::Stale("never computed".into()),
            Some(old) => {
                let d = node.components.diff(&old);
                if d.is_empty() {
                    Freshness::Stale("entry was removed from the cache".into())
                } else {
                    Freshness::Stale(d.join("; "))
                }
            }
        }
    }

    /// Looks a node up by id, or lists near matches.
    pub fn find(&self, id: &str) -> Result<NodeIndex> {
        if let Some(ix) = self.by_id.get(id) {
            return Ok(*ix);
        }
        let mut near: Vec<&String> = self.by_id.keys().filter(|k| k.contains(id)).collect();
        near.sort();
        let help = if near.is_empty() {
            "run `runner plan FILE` to list node ids".to_string()
        } else {
            format!(
                "did you mean: {}",
                near.iter()
                    .take(8)
                    .map(|s| s.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            )
        };
        Err(Error::usage(format!("no node `{id}` in this experiment")).with_help(help))
    }
}

#[cfg(test)]
mod tests {
    use super::natural_key;

    #[test]
    fn natural_order_of_roi_names() {
        let mut v = vec!["ventral", "V10", "V2", "V1", "lateral", "V4"];
        v.sort_by_key(|s| natural_key(s));
        assert_eq!(v, ["V1", "V2", "V4", "V10", "lateral", "ventral"]);
    }
}

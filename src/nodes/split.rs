//! `split`: which stimuli a fit learns from (`fit`), which it is scored on
//! (`score`) and which it only predicts (`predict`, stimuli without
//! responses, such as the Algonauts test images). Indices are positions in the
//! subject's stimulus order (the rows of every feature matrix), and they are
//! written into the entry so that the split a result came from is on record.

use serde::{Deserialize, Serialize};

use crate::error::Result;
use crate::node::{Ctx, NodeKind};
use crate::numerics::numpy_random::RandomState;

pub const VERSION: u32 = 1;

#[derive(Debug, Clone, Serialize, PartialEq)]
#[serde(tag = "method", rename_all = "snake_case")]
pub enum SplitMethod {
    /// The subject's own splits (NSD: train + val to fit, test to score).
    Given {
        fit: Vec<(usize, usize)>,
        score: Vec<(usize, usize)>,
    },
    /// The Algonauts devkit's holdout: `np.random.seed(seed);
    /// np.random.shuffle(idxs)`, the first `round(n / 100 * train_percent)`
    /// to fit and the rest to score, both in shuffled order.
    Holdout { train_percent: f64, seed: u32 },
    /// Fold `fold` of `k` contiguous folds of the same shuffle (sklearn's
    /// `KFold(k, shuffle=True)` layout: the first n % k folds one larger).
    KFold { k: usize, fold: usize, seed: u32 },
}

#[derive(Debug, Clone, Serialize)]
pub struct SplitTask {
    pub method: SplitMethod,
    /// Stimuli 0..n_responses have responses; the rest are predicted only.
    pub n_responses: usize,
    pub n_stimuli: usize,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Split {
    pub fit: Vec<usize>,
    pub score: Vec<usize>,
    pub predict: Vec<usize>,
}

impl SplitTask {
    /// How many stimuli fit and score, without drawing the shuffle.
    pub fn sizes(&self) -> (usize, usize) {
        let n = self.n_responses;
        let len = |r: &[(usize, usize)]| r.iter().map(|x| x.1).sum();
        match &self.method {
            SplitMethod::Given { fit, score } => (len(fit), len(score)),
            SplitMethod::Holdout { train_percent, .. } => {
                let f = (((n as f64) / 100.0 * train_percent).round_ties_even() as usize).min(n);
                (f, n - f)
            }
            SplitMethod::KFold { k, fold, .. } => {
                let s = n / k + usize::from(*fold < n % k);
                (n - s, s)
            }
        }
    }

    pub fn split(&self) -> Split {
        let n = self.n_responses;
        let predict = (n..self.n_stimuli).collect();
        let ranges = |r: &[(usize, usize)]| r.iter().flat_map(|&(s, len)| s..s + len).collect();
        let (fit, score) = match &self.method {
            SplitMethod::Given { fit, score } => (ranges(fit), ranges(score)),
            SplitMethod::Holdout {
                train_percent,
                seed,
            } => {
                let mut idx: Vec<usize> = (0..n).collect();
                RandomState::new(*seed).shuffle(&mut idx);
                // numpy's round is half-to-even, as is round_ties_even.
                let n_fit = ((n as f64) / 100.0 * train_percent).round_ties_even() as usize;
                let score = idx.split_off(n_fit.min(n));
                (idx, score)
            }
            SplitMethod::KFold { k, fold, seed } => {
                let mut idx: Vec<usize> = (0..n).collect();
                RandomState::new(*seed).shuffle(&mut idx);
                let (base, extra) = (n / k, n % k);
                let start = fold * base + (*fold).min(extra);
                let len = base + usize::from(*fold < extra);
                let score: Vec<usize> = idx[start..start + len].to_vec();
                let fit = idx[..start]
                    .iter()
                    .chain(&idx[start + len..])
                    .copied()
                    .collect();
                (fit, score)
            }
        };
        Split {
            fit,
            score,
            predict,
        }
    }
}

impl NodeKind for SplitTask {
    fn kind(&self) -> &'static str {
        "split"
    }
    fn version(&self) -> u32 {
        VERSION
    }
    fn mem_bytes(&self) -> u64 {
        self.n_stimuli as u64 * 32
    }
    fn run(&self, ctx: &Ctx) -> Result<()> {
        ctx.out.write_json("split.json", &self.split())
    }
}

pub fn read(entry: &crate::cache::Entry) -> Result<Split> {
    entry.read_json("split.json")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn devkit_holdout_sizes() {
        // The devkit's subj02 (9841 images): 8857 / 984.
        let t = SplitTask {
            method: SplitMethod::Holdout {
                train_percent: 90.0,
                seed: 4,
            },
            n_responses: 9841,
            n_stimuli: 9841 + 159,
        };
        let s = t.split();
        assert_eq!(
            (s.fit.len(), s.score.len(), s.predict.len()),
            (8857, 984, 159)
        );
        let mut all: Vec<usize> = s.fit.iter().chain(&s.score).copied().collect();
        all.sort();
        assert_eq!(all, (0..9841).collect::<Vec<_>>());
        assert_eq!(s.predict[0], 9841);
    }

    #[test]
    fn kfold_partitions_every_response_once() {
        let mut seen = vec![0; 23];
        for fold in 0..5 {
            let s = SplitTask {
                method: SplitMethod::KFold {
                    k: 5,
                    fold,
                    seed: 4,
                },
                n_responses: 23,
                n_stimuli: 23,
            }
            .split();
            assert_eq!(s.fit.len() + s.score.len(), 23);
            assert_eq!(s.score.len(), if fold < 3 { 5 } else { 4 });
            for i in s.score {
                seen[i] += 1;
            }
        }
        assert!(seen.iter().all(|&c| c == 1));
    }
}

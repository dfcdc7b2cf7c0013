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
    /// Lab08: the images flagged in `column` (`shared1000`) score; of the
    /// others `ceil(fraction × n)` are held out by `np.random.seed(seed);
    /// np.random.shuffle(...)` to choose λ, the rest fit. Drawn over every
    /// image row, kept in row order, then restricted to rows with responses,
    /// as the lab does. `sizes` are the plan's counts (validation, rest).
    ValHoldout {
        column: String,
        holdout_fraction: f64,
        seed: u32,
        #[serde(skip)]
        sizes: (usize, usize),
    },
    /// Fold `fold` of `k` contiguous folds of the same shuffle (sklearn's
    /// `KFold(k, shuffle=True)` layout: the first n % k folds one larger).
    KFold { k: usize, fold: usize, seed: u32 },
    /// Split `split` of the Kay V4 project's repeated random splits of the
    /// `pool` stimuli (vim-1's 1750 training images): one
    /// `np.random.RandomState(seed)` draws `perm = rng.permutation(n)` once
    /// per split in turn; `test = np.sort(perm[:n_test])` is scored and the
    /// sorted rest fits. `validation` (vim-1's 120 images) is scored by every
    /// split's model on its own.
    RandomSplits {
        n_splits: usize,
        n_test: usize,
        seed: u32,
        split: usize,
        pool: Vec<(usize, usize)>,
        validation: Vec<(usize, usize)>,
    },
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
    /// Stimuli that choose hyperparameters (λ), neither fitted nor scored.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub holdout: Vec<usize>,
    /// Stimuli scored apart from `score`, outside the split (vim-1's
    /// validation images, never drawn into any split).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub validation: Vec<usize>,
}

/// `int(np.ceil(n * fraction))`, with numpy's float64 product.
pub fn holdout_count(n: usize, fraction: f64) -> usize {
    ((n as f64) * fraction).ceil() as usize
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
            SplitMethod::ValHoldout {
                holdout_fraction,
                sizes: (val, rest),
                ..
            } => (
                rest - holdout_count(*rest, *holdout_fraction).min(*rest),
                *val,
            ),
            SplitMethod::RandomSplits { n_test, pool, .. } => {
                let n = len(pool);
                (n.saturating_sub(*n_test), (*n_test).min(n))
            }
        }
    }

    /// Lab08's split from the subject's image table.
    pub fn val_holdout(
        column: &str,
        fraction: f64,
        seed: u32,
        images: &super::subject::Lab08Images,
    ) -> std::result::Result<Split, String> {
        let flags = images.flags.get(column).ok_or_else(|| {
            format!(
                "the image table has no boolean column `{column}` (boolean columns: {})",
                images.flags.keys().cloned().collect::<Vec<_>>().join(", ")
            )
        })?;
        let n = images.n_rows;
        let mut notval: Vec<usize> = (0..n).filter(|&i| !flags[i]).collect();
        let n_hold = holdout_count(notval.len(), fraction).min(notval.len());
        let n_trn = notval.len() - n_hold;
        RandomState::new(seed).shuffle(&mut notval);
        // Masks over the image rows, as the lab builds them: row order kept.
        let mut role = vec![0u8; n];
        for &i in &notval[..n_trn] {
            role[i] = 1;
        }
        for &i in &notval[n_trn..] {
            role[i] = 2;
        }
        let (mut fit, mut holdout, mut score) = (Vec::new(), Vec::new(), Vec::new());
        for (stim, &row) in images.kept.iter().enumerate() {
            match role[row] {
                1 => fit.push(stim),
                2 => holdout.push(stim),
                _ => score.push(stim),
            }
        }
        Ok(Split {
            fit,
            score,
            predict: vec![],
            holdout,
            validation: vec![],
        })
    }

    pub fn split(&self) -> Split {
        let n = self.n_responses;
        let predict = (n..self.n_stimuli).collect();
        let ranges = |r: &[(usize, usize)]| r.iter().flat_map(|&(s, len)| s..s + len).collect();
        let mut validation = Vec::new();
        let (fit, score) = match &self.method {
            SplitMethod::RandomSplits {
                n_test,
                seed,
                split,
                pool,
                validation: val,
                ..
            } => {
                let pool: Vec<usize> = ranges(pool);
                let mut rng = RandomState::new(*seed);
                let mut perm = Vec::new();
                for _ in 0..=*split {
                    perm = rng.permutation(pool.len());
                }
                let n_test = (*n_test).min(pool.len());
                let mut test: Vec<usize> = perm[..n_test].to_vec();
                let mut train: Vec<usize> = perm[n_test..].to_vec();
                test.sort_unstable();
                train.sort_unstable();
                validation = ranges(val);
                (
                    train.iter().map(|&i| pool[i]).collect(),
                    test.iter().map(|&i| pool[i]).collect(),
                )
            }
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
            SplitMethod::ValHoldout { .. } => {
                unreachable!("drawn from the subject's image table by run()")
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
            holdout: vec![],
            validation,
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
        if let SplitMethod::ValHoldout {
            column,
            holdout_fraction,
            seed,
            ..
        } = &self.method
        {
            let subject = ctx.input("subject")?;
            let images: super::subject::Lab08Images = subject.read_json("images.json")?;
            let split = Self::val_holdout(column, *holdout_fraction, *seed, &images)
                .map_err(|m| ctx.fail(m))?;
            return ctx.out.write_json("split.json", &split);
        }
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

    #[test]
    fn random_splits_are_the_kay_projects() {
        // The project: rng = RandomState(0); per split perm =
        // rng.permutation(1750), test = sort(perm[:250]). The permutations
        // themselves are checked against numpy in tests/numpy_random_reference.rs.
        let mut rng = RandomState::new(0);
        for k in 0..5 {
            let perm = rng.permutation(1750);
            let s = SplitTask {
                method: SplitMethod::RandomSplits {
                    n_splits: 5,
                    n_test: 250,
                    seed: 0,
                    split: k,
                    pool: vec![(0, 1750)],
                    validation: vec![(1750, 120)],
                },
                n_responses: 1870,
                n_stimuli: 1870,
            }
            .split();
            let mut test = perm[..250].to_vec();
            test.sort_unstable();
            assert_eq!(s.score, test, "split {k}");
            assert_eq!(s.fit.len(), 1500);
            assert!(s.fit.windows(2).all(|w| w[0] < w[1]));
            assert!(s.fit.iter().all(|i| !test.contains(i)));
            assert_eq!(s.validation, (1750..1870).collect::<Vec<_>>());
            assert!(s.predict.is_empty());
        }
    }
}

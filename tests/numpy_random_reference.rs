//! numpy's legacy RandomState, bit for bit: the draws the Algonauts devkit,
//! Lab08 and the Kay V4 project make, against fixtures numpy itself wrote
//! (`tests/fixtures/make_numpy_random_fixtures.py`).

use std::path::Path;

use runner::numerics::numpy_random::RandomState;

fn fixture(name: &str) -> (Vec<usize>, Vec<i64>) {
    let a = runner::npy::read_f64(&Path::new("tests/fixtures/numpy_random").join(name)).unwrap();
    (a.shape, a.data.iter().map(|&x| x as i64).collect())
}

fn as_i64(v: &[usize]) -> Vec<i64> {
    v.iter().map(|&x| x as i64).collect()
}

#[test]
fn the_algonauts_devkit_split_shuffle() {
    let (_, want) = fixture("algonauts_shuffle_9841.npy");
    let mut idxs: Vec<usize> = (0..9841).collect();
    RandomState::new(4).shuffle(&mut idxs);
    assert_eq!(as_i64(&idxs), want);
}

#[test]
fn the_split_node_is_the_devkits_holdout() {
    // idxs_train, idxs_val = idxs[:num_train], idxs[num_train:], with
    // num_train = int(np.round(9841 / 100 * 90)) = 8857 (subj01, subj02, ...).
    use runner::nodes::split::{SplitMethod, SplitTask};
    let (_, want) = fixture("algonauts_shuffle_9841.npy");
    let split = SplitTask {
        method: SplitMethod::Holdout {
            train_percent: 90.0,
            seed: 4,
        },
        n_responses: 9841,
        n_stimuli: 9841 + 159,
    }
    .split();
    assert_eq!(as_i64(&split.fit), want[..8857]);
    assert_eq!(as_i64(&split.score), want[8857..]);
    assert_eq!(split.predict, (9841..10000).collect::<Vec<_>>());
}

#[test]
fn the_lab08_holdout_shuffle() {
    let (_, want) = fixture("lab08_shuffle_9000.npy");
    assert_eq!(as_i64(&RandomState::new(171301).permutation(9000)), want);
}

#[test]
fn five_kay_permutations_from_one_state() {
    let (shape, want) = fixture("kay_permutations_1750.npy");
    assert_eq!(shape, [5, 1750]);
    let mut rs = RandomState::new(0);
    let got: Vec<i64> = (0..5).flat_map(|_| as_i64(&rs.permutation(1750))).collect();
    assert_eq!(got, want);
}

#[test]
fn the_kay_feature_subsample() {
    let (_, want) = fixture("kay_choice_75264_5000.npy");
    let got = RandomState::new(0)
        .choice_without_replacement(75264, 5000)
        .unwrap();
    assert_eq!(as_i64(&got), want);
}

#[test]
fn the_kay_subsample_drawn_after_the_splits() {
    // reduce = { method = "subsample", n_columns = 5000, seed = 0,
    // after_splits = 5 } on vim-1's 1750 training images.
    let (_, want) = fixture("kay_subsample_after_splits.npy");
    let r = runner::nodes::reduce::Reduce::Subsample {
        n_columns: 5000,
        seed: 0,
        after_splits: 5,
        pool: 1750,
    };
    let got = r.subsample_columns(75264).unwrap();
    assert_eq!(as_i64(&got), want);
    // Not a fresh state's draw: the splits come first.
    let (_, fresh) = fixture("kay_choice_75264_5000.npy");
    assert_ne!(want, fresh);
}

#[test]
fn shuffles_of_every_small_length() {
    let (shape, want) = fixture("small_shuffles.npy");
    assert_eq!(shape, [40, 40]);
    for n in 0..40 {
        let mut a: Vec<usize> = (0..n).collect();
        RandomState::new(n as u32).shuffle(&mut a);
        assert_eq!(as_i64(&a), want[n * 40..n * 40 + n], "n = {n}");
    }
}

#[test]
fn bounded_draws_on_the_32_and_64_bit_paths() {
    let (_, bounds) = fixture("interval_bounds.npy");
    let (_, want) = fixture("interval_draws.npy");
    let mut rs = RandomState::new(7);
    let got: Vec<i64> = bounds
        .iter()
        .flat_map(|&m| [0; 3].map(|_| m))
        .map(|m| rs.interval(m as u64) as i64)
        .collect();
    assert_eq!(got, want);
}

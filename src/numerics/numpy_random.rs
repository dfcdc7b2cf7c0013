//! numpy's legacy `RandomState` (MT19937), for the draws the seeds' workflows
//! make: the Algonauts devkit's `np.random.seed(4); np.random.shuffle(idxs)`,
//! Lab08's `np.random.seed(171301)` holdout, and the Kay V4 project's
//! `RandomState(0)` splits and feature subsample. Bit-identical with numpy
//! (`tests/numpy_random_reference.rs`, fixtures from numpy itself).
//!
//! The generator is `rand_mt`'s reference MT19937; numpy seeds an integer
//! with `init_genrand` (not CPython's `init_by_array`), and bounds a draw by
//! masked rejection (`random_interval` in numpy's `legacy-distributions.c`).

use rand_mt::Mt;

/// `numpy.random.RandomState(seed)` for an integer seed.
pub struct RandomState {
    mt: Mt,
}

impl RandomState {
    /// numpy accepts integer seeds in 0..2³²; so does this.
    pub fn new(seed: u32) -> RandomState {
        RandomState { mt: Mt::new(seed) }
    }

    /// A uniform integer in `0..=max`, as numpy's legacy `random_interval`.
    pub fn interval(&mut self, max: u64) -> u64 {
        if max == 0 {
            return 0;
        }
        // The smallest all-ones mask covering `max`.
        let mut mask = max;
        for shift in [1, 2, 4, 8, 16, 32] {
            mask |= mask >> shift;
        }
        if max <= u32::MAX as u64 {
            loop {
                let v = (self.mt.next_u32() as u64) & mask;
                if v <= max {
                    return v;
                }
            }
        }
        loop {
            // numpy's MT19937 next64: the first draw is the high word.
            let hi = self.mt.next_u32() as u64;
            let lo = self.mt.next_u32() as u64;
            let v = ((hi << 32) | lo) & mask;
            if v <= max {
                return v;
            }
        }
    }

    /// `RandomState.shuffle(x)` of a 1-d array (Fisher–Yates from the end).
    pub fn shuffle<T>(&mut self, x: &mut [T]) {
        for i in (1..x.len()).rev() {
            let j = self.interval(i as u64) as usize;
            x.swap(i, j);
        }
    }

    /// `RandomState.permutation(n)`: `arange(n)`, shuffled.
    pub fn permutation(&mut self, n: usize) -> Vec<usize> {
        let mut v: Vec<usize> = (0..n).collect();
        self.shuffle(&mut v);
        v
    }

    /// `RandomState.choice(n, size, replace=False)` (no `p`): numpy's legacy
    /// path takes the first `size` of `permutation(n)`.
    pub fn choice_without_replacement(&mut self, n: usize, size: usize) -> Option<Vec<usize>> {
        if size > n {
            return None;
        }
        let mut v = self.permutation(n);
        v.truncate(size);
        Some(v)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn first_outputs_are_the_reference_mt19937() {
        // mt19937ar.c's init_genrand(5489) (the reference default seed).
        let mut r = RandomState::new(5489);
        assert_eq!(r.mt.next_u32(), 3_499_211_612);
        assert_eq!(r.mt.next_u32(), 581_869_302);
    }

    #[test]
    fn interval_stays_in_range_and_hits_both_ends() {
        let mut r = RandomState::new(1);
        let draws: Vec<u64> = (0..2000).map(|_| r.interval(5)).collect();
        assert!(draws.iter().all(|&d| d <= 5));
        assert!(draws.contains(&0) && draws.contains(&5));
        assert_eq!(r.interval(0), 0);
    }

    #[test]
    fn choice_refuses_more_than_the_population() {
        let mut r = RandomState::new(0);
        assert!(r.choice_without_replacement(3, 4).is_none());
        let c = r.choice_without_replacement(10, 10).unwrap();
        let mut s = c.clone();
        s.sort();
        assert_eq!(s, (0..10).collect::<Vec<_>>());
    }
}

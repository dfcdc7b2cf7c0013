//! runner's RSA numerics (src/numerics/rsa.rs) against numpy 2.4.6 /
//! scipy 1.17.1 fixtures (made by tests/fixtures/make_rsa_reference.py; see
//! tests/fixtures/rsa/README.md), plus properties of Kendall's τa and of the
//! bootstrap.
//!
//! Tolerance: 1e-10 absolute on RDM entries (euclidean: relative to
//! max(1, |d|)), comparisons, ranks and percentiles.
//!
//! Ranks depend on exact ties, and two routes to the same correlation RDM
//! (OpenBLAS vs faer summation order) break ties of numpy's RDM at the last
//! bit. So the comparisons are checked on numpy's own RDMs (the comparison
//! numerics alone), and end to end from runner's RDMs where that is
//! meaningful: the tie-free 40-stimulus case, and euclidean RDMs of integer
//! data, where runner's distances are exactly pdist's.

use std::path::{Path, PathBuf};

use proptest::prelude::*;
use runner::npy;
use runner::numerics::rsa::{self, Compare, RdmMethod};

const TOL: f64 = 1e-10;
const METHODS: [Compare; 3] = [Compare::Pearson, Compare::Spearman, Compare::KendallTauA];

fn dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/rsa")
}

fn load(name: &str) -> npy::Array<f64> {
    npy::read_f64(&dir().join(format!("{name}.npy"))).unwrap()
}

/// (data, n, p) of case `x_<case>`.
fn x(case: &str) -> (Vec<f64>, usize, usize) {
    let a = load(&format!("x_{case}"));
    let (n, p) = a.rows_cols();
    (a.data, n, p)
}

fn close(what: &str, got: f64, want: f64, tol: f64) {
    assert!(
        (got - want).abs() <= tol,
        "{what}: got {got}, numpy/scipy {want} (|Δ| {:e}, tol {tol:e})",
        (got - want).abs()
    );
}

const CASES: [&str; 6] = ["a", "b", "tie_a", "tie_b", "const", "near"];

#[test]
fn correlation_rdms_match_numpy() {
    for case in CASES {
        let (data, n, p) = x(case);
        let r = rsa::rdm(&data, n, p, RdmMethod::Correlation);
        let want = load(&format!("rdm_corr_{case}")).data;
        assert_eq!(r.n, n);
        let mut worst = 0.0f64;
        for (k, (g, w)) in r.data.iter().zip(&want).enumerate() {
            let (i, j) = (k / n, k % n);
            if w.is_nan() {
                assert!(g.is_nan(), "{case}[{i},{j}]: numpy NaN, runner {g}");
                continue;
            }
            assert!(!g.is_nan(), "{case}[{i},{j}]: runner NaN, numpy {w}");
            if i == j {
                assert_eq!(*g, 0.0, "{case}: diagonal");
            }
            worst = worst.max((g - w).abs());
            close(&format!("corr {case}[{i},{j}]"), *g, *w, TOL);
        }
        eprintln!("corr {case}: max |Δ| = {worst:e}");
        if case != "const" {
            assert!(r.constant_patterns.is_empty(), "{case}");
        }
    }
}

#[test]
fn constant_patterns_are_reported() {
    let (data, n, p) = x("const");
    let r = rsa::rdm(&data, n, p, RdmMethod::Correlation);
    assert_eq!(r.constant_patterns, vec![3, 8]);
    for i in 0..n {
        for j in 0..n {
            let nan = r.data[i * n + j].is_nan();
            assert_eq!(nan, [3, 8].contains(&i) || [3, 8].contains(&j), "[{i},{j}]");
        }
    }
    // NaN never reaches a comparison as a number.
    let e = rsa::rdm(&data, n, p, RdmMethod::Euclidean);
    assert!(e.constant_patterns.is_empty());
    let (u, v) = (rsa::upper(&r.data, n), rsa::upper(&e.data, n));
    for m in METHODS {
        assert_eq!(rsa::compare(&u, &v, m), None, "{m:?}");
    }
    // Dropped, they compare like numpy on the remaining stimuli.
    let kept = rsa::without(n, &r.constant_patterns);
    assert_eq!(kept.len(), n - 2);
    let (rk, nk) = rsa::keep(&r.data, n, &kept);
    let (ek, _) = rsa::keep(&e.data, n, &kept);
    assert_eq!(nk, 10);
    assert!(rk.iter().all(|v| v.is_finite()));
    let (u, v) = (rsa::upper(&rk, nk), rsa::upper(&ek, nk));
    let want_r = load("rdm_corr_const").data;
    let want_e = load("rdm_euc_const").data;
    let (wr, _) = rsa::keep(&want_r, n, &kept);
    let (we, _) = rsa::keep(&want_e, n, &kept);
    let (wu, wv) = (rsa::upper(&wr, nk), rsa::upper(&we, nk));
    for m in METHODS {
        let got = rsa::compare(&u, &v, m).unwrap();
        let want = rsa::compare(&wu, &wv, m).unwrap();
        close(&format!("kept {m:?}"), got, want, TOL);
    }
}

#[test]
fn euclidean_rdms_match_pdist() {
    for case in CASES {
        let (data, n, p) = x(case);
        let r = rsa::rdm(&data, n, p, RdmMethod::Euclidean);
        let want = load(&format!("rdm_euc_{case}")).data;
        let mut worst = 0.0f64;
        for (k, (g, w)) in r.data.iter().zip(&want).enumerate() {
            let rel = (g - w).abs() / w.abs().max(1e-300);
            if *w != 0.0 {
                worst = worst.max(rel);
            }
            assert!(
                (g - w).abs() <= TOL * w.abs(),
                "euc {case}[{},{}]: got {g}, pdist {w} (rel {rel:e})",
                k / n,
                k % n
            );
        }
        eprintln!("euc {case}: max relative |Δ| = {worst:e}");
        if case.starts_with("tie") {
            // Integer data: exactly pdist's distances (and ties).
            assert_eq!(r.data, want, "{case}");
        }
    }
}

#[test]
fn upper_is_triu_k1() {
    let m: Vec<f64> = (0..16).map(f64::from).collect();
    assert_eq!(rsa::upper(&m, 4), [1.0, 2.0, 3.0, 6.0, 7.0, 11.0]);
    let (k, n) = rsa::keep(&m, 4, &[3, 1]);
    assert_eq!((k, n), (vec![15.0, 13.0, 7.0, 5.0], 2));
}

const PAIRS: [&str; 5] = [
    "corr_a_b",
    "euc_a_corr_b",
    "corr_tie_a_b",
    "euc_tie_a_b",
    "euc_tie_a_corr_tie_b",
];

/// The two numpy RDMs of a pair, as upper triangles.
fn numpy_pair(pair: &str) -> (Vec<f64>, Vec<f64>) {
    let (m1, c1, m2, c2) = match pair {
        "corr_a_b" => ("corr", "a", "corr", "b"),
        "euc_a_corr_b" => ("euc", "a", "corr", "b"),
        "corr_tie_a_b" => ("corr", "tie_a", "corr", "tie_b"),
        "euc_tie_a_b" => ("euc", "tie_a", "euc", "tie_b"),
        "euc_tie_a_corr_tie_b" => ("euc", "tie_a", "corr", "tie_b"),
        _ => unreachable!(),
    };
    let r1 = load(&format!("rdm_{m1}_{c1}"));
    let r2 = load(&format!("rdm_{m2}_{c2}"));
    let n = r1.shape[0];
    (rsa::upper(&r1.data, n), rsa::upper(&r2.data, n))
}

#[test]
fn ranks_match_rankdata() {
    for pair in PAIRS {
        let (u, v) = numpy_pair(pair);
        let want = load(&format!("ranks_{pair}")).data;
        let got: Vec<f64> = rsa::ranks(&u).into_iter().chain(rsa::ranks(&v)).collect();
        assert_eq!(got, want, "{pair}: ranks");
    }
}

#[test]
fn comparisons_match_scipy() {
    for pair in PAIRS {
        let (u, v) = numpy_pair(pair);
        let want = load(&format!("cmp_{pair}")).data;
        for (m, w) in METHODS.iter().zip(&want) {
            let got = rsa::compare(&u, &v, *m).unwrap();
            close(&format!("{pair} {}", m.name()), got, *w, TOL);
        }
    }
}

#[test]
fn comparisons_end_to_end() {
    let rdm = |case: &str, m: RdmMethod| {
        let (data, n, p) = x(case);
        rsa::upper(&rsa::rdm(&data, n, p, m).data, n)
    };
    use RdmMethod::{Correlation as C, Euclidean as E};
    for (pair, a, b) in [
        ("corr_a_b", rdm("a", C), rdm("b", C)),
        ("euc_a_corr_b", rdm("a", E), rdm("b", C)),
        ("euc_tie_a_b", rdm("tie_a", E), rdm("tie_b", E)),
    ] {
        let want = load(&format!("cmp_{pair}")).data;
        for (m, w) in METHODS.iter().zip(&want) {
            let got = rsa::compare(&a, &b, *m).unwrap();
            close(&format!("end to end {pair} {}", m.name()), got, *w, TOL);
        }
    }
}

#[test]
fn percentile_matches_numpy() {
    let s = load("pct_x").data;
    let q = load("pct_q").data;
    let want = load("pct_v").data;
    for (q, w) in q.iter().zip(&want) {
        close(&format!("percentile {q}"), rsa::percentile(&s, *q), *w, TOL);
    }
}

fn brute_tau_a(a: &[f64], b: &[f64]) -> f64 {
    let n = a.len();
    let mut s = 0i64;
    for i in 0..n {
        for j in i + 1..n {
            let x = (a[i] - a[j]).partial_cmp(&0.0).unwrap() as i64;
            let y = (b[i] - b[j]).partial_cmp(&0.0).unwrap() as i64;
            s += x * y;
        }
    }
    s as f64 / (n * (n - 1) / 2) as f64
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]

    /// Knight's O(n log n) τa = the O(n²) count, with heavy ties in x, in y
    /// and jointly (few distinct values), sizes across the merge cut-off.
    #[test]
    fn tau_a_equals_brute_force(
        levels in (1u32..6, 1u32..6),
        seq in prop::collection::vec((0u32..1000, 0u32..1000), 2..400),
    ) {
        let a: Vec<f64> = seq.iter().map(|p| f64::from(p.0 % levels.0)).collect();
        let b: Vec<f64> = seq.iter().map(|p| f64::from(p.1 % levels.1) * 0.5 - 1.0).collect();
        let constant = |v: &[f64]| v.iter().all(|x| *x == v[0]);
        let got = rsa::kendall_tau_a(&a, &b);
        if constant(&a) || constant(&b) {
            prop_assert_eq!(got, None);
        } else {
            let want = brute_tau_a(&a, &b);
            let got = got.unwrap();
            prop_assert!((got - want).abs() < 1e-14, "got {} brute {}", got, want);
        }
    }

    /// Same with continuous values plus a share of repeats.
    #[test]
    fn tau_a_equals_brute_force_continuous(
        seq in prop::collection::vec((-1e3f64..1e3, -1e3f64..1e3, 0u8..4), 2..300),
    ) {
        let a: Vec<f64> = seq.iter().map(|p| if p.2 == 0 { 0.0 } else { p.0 }).collect();
        let b: Vec<f64> = seq.iter().map(|p| if p.2 == 1 { 1.0 } else { p.1 }).collect();
        if let Some(got) = rsa::kendall_tau_a(&a, &b) {
            let want = brute_tau_a(&a, &b);
            prop_assert!((got - want).abs() < 1e-14, "got {} brute {}", got, want);
        }
    }
}

/// Two RDMs of the 40-stimulus cases.
fn ab_rdms() -> (Vec<f64>, Vec<f64>, usize) {
    let (xa, n, p) = x("a");
    let (xb, _, q) = x("b");
    let a = rsa::rdm(&xa, n, p, RdmMethod::Correlation).data;
    let b = rsa::rdm(&xb, n, q, RdmMethod::Correlation).data;
    (a, b, n)
}

#[test]
fn bootstrap_is_deterministic_across_thread_counts() {
    let (a, b, n) = ab_rdms();
    for m in METHODS {
        let run = |threads: usize| {
            rayon::ThreadPoolBuilder::new()
                .num_threads(threads)
                .build()
                .unwrap()
                .install(|| rsa::bootstrap(&a, &b, n, m, 64, 11, 0.95))
        };
        let one = run(1);
        let two = run(2);
        assert_eq!(one, two, "{m:?}: 1 vs 2 threads");
        assert_eq!(
            one,
            rsa::bootstrap(&a, &b, n, m, 64, 11, 0.95),
            "{m:?}: rerun"
        );
        assert_eq!(one.values.len() + one.undefined, 64);
        let other = rsa::bootstrap(&a, &b, n, m, 64, 12, 0.95);
        assert_ne!(one.values, other.values, "{m:?}: seed ignored");
    }
}

#[test]
fn bootstrap_samples_are_the_documented_resamples() {
    let (a, b, n) = ab_rdms();
    let boot = rsa::bootstrap(&a, &b, n, Compare::Spearman, 5, 3, 0.9);
    for (k, got) in boot.values.iter().enumerate() {
        let idx = rsa::bootstrap_indices(n, 3, k as u64);
        assert!(idx.iter().all(|&i| i < n));
        let (mut u, mut v) = (Vec::new(), Vec::new());
        for s in 0..n {
            for t in s + 1..n {
                if idx[s] != idx[t] {
                    u.push(a[idx[s] * n + idx[t]]);
                    v.push(b[idx[s] * n + idx[t]]);
                }
            }
        }
        assert_eq!(
            Some(*got),
            rsa::compare(&u, &v, Compare::Spearman),
            "sample {k}"
        );
    }
}

#[test]
fn bootstrap_ci_contains_the_full_sample_value() {
    let (a, b, n) = ab_rdms();
    for m in METHODS {
        let full = rsa::compare(&rsa::upper(&a, n), &rsa::upper(&b, n), m).unwrap();
        let boot = rsa::bootstrap(&a, &b, n, m, 400, 2026, 0.95);
        assert_eq!(boot.undefined, 0);
        let (lo, hi) = boot.ci.unwrap();
        eprintln!("{m:?}: full {full:.4}, 95% CI [{lo:.4}, {hi:.4}]");
        assert!(lo < full && full < hi, "{m:?}: {full} outside [{lo}, {hi}]");
        assert!(
            hi - lo > 1e-3 && hi - lo < 1.0,
            "{m:?}: degenerate interval"
        );
        let mut s = boot.values.clone();
        s.sort_by(f64::total_cmp);
        assert_eq!(lo, rsa::percentile(&s, 50.0 * (1.0 - 0.95)));
    }
}

#[test]
fn bootstrap_counts_undefined_samples() {
    // Stimuli 3 and 8 are constant: any resample drawing one of them has NaN
    // entries, hence an undefined comparison.
    let (data, n, p) = x("const");
    let r = rsa::rdm(&data, n, p, RdmMethod::Correlation).data;
    let e = rsa::rdm(&data, n, p, RdmMethod::Euclidean).data;
    let boot = rsa::bootstrap(&r, &e, n, Compare::Pearson, 50, 1, 0.95);
    let expect = (0..50u64)
        .filter(|&k| {
            let idx = rsa::bootstrap_indices(n, 1, k);
            idx.contains(&3) || idx.contains(&8)
        })
        .count();
    assert!(expect > 0);
    assert_eq!(boot.undefined, expect);
    assert_eq!(boot.values.len(), 50 - expect);
    assert!(boot.values.iter().all(|v| v.is_finite()));
}

//! The engine's own pseudo-random generator.
//!
//! A published crate's generator may change its stream between versions; results that users
//! compare across machines and releases must not. SplitMix64 (Steele, Lea and Flood, 2014) is
//! small, fast, passes BigCrush, and is fully specified here.

/// SplitMix64: a 64-bit state advanced by a Weyl sequence and mixed by a finaliser.
#[derive(Debug, Clone)]
pub struct SplitMix64 {
    state: u64,
}

impl SplitMix64 {
    pub fn new(seed: u64) -> Self {
        Self { state: seed }
    }

    /// An independent stream derived from a seed and a stream number (e.g. a restart index).
    pub fn stream(seed: u64, stream: u64) -> Self {
        let mut mixer = Self::new(seed ^ stream.wrapping_mul(0xD1B5_4A32_D192_ED03));
        Self::new(mixer.next_u64())
    }

    pub fn next_u64(&mut self) -> u64 {
        self.state = self.state.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.state;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// A uniform float in `[0, 1)` with 53 random bits.
    pub fn next_f64(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 * (1.0 / (1u64 << 53) as f64)
    }

    /// A uniform integer in `0..bound` (Lemire's multiply-shift; the bias is below 2^-32 for
    /// any bound this engine uses).
    pub fn below(&mut self, bound: usize) -> usize {
        debug_assert!(bound > 0);
        ((self.next_u64() as u128 * bound as u128) >> 64) as usize
    }

    /// A Gamma(shape, 1) deviate (Marsaglia and Tsang, 2000; shape < 1 by the boost
    /// `Gamma(a) = Gamma(a + 1) · U^(1/a)`).
    pub fn gamma(&mut self, shape: f64) -> f64 {
        if shape < 1.0 {
            let u = 1.0 - self.next_f64();
            return self.gamma(shape + 1.0) * u.powf(1.0 / shape);
        }
        let d = shape - 1.0 / 3.0;
        let c = 1.0 / (9.0 * d).sqrt();
        loop {
            let x = self.normal();
            let v = (1.0 + c * x).powi(3);
            if v <= 0.0 {
                continue;
            }
            let u = 1.0 - self.next_f64();
            if u.ln() < 0.5 * x * x + d - d * v + d * v.ln() {
                return d * v;
            }
        }
    }

    /// A Dirichlet draw with the given concentration parameters.
    pub fn dirichlet(&mut self, alpha: &[f64]) -> Vec<f64> {
        let draws: Vec<f64> = alpha.iter().map(|&a| self.gamma(a)).collect();
        let total: f64 = draws.iter().sum();
        draws.into_iter().map(|x| x / total).collect()
    }

    /// A Poisson(mean) deviate: inversion for means below 10, otherwise Hörmann's PTRS
    /// transformed rejection (1993).
    pub fn poisson(&mut self, mean: f64) -> u64 {
        if mean <= 0.0 {
            return 0;
        }
        if mean < 10.0 {
            let mut mass = (-mean).exp();
            let mut u = self.next_f64();
            let mut k = 0u64;
            while u > mass && mass > 0.0 {
                u -= mass;
                k += 1;
                mass *= mean / k as f64;
            }
            return k;
        }
        let log_mean = mean.ln();
        let b = 0.931 + 2.53 * mean.sqrt();
        let a = -0.059 + 0.02483 * b;
        let inverse_alpha = 1.1239 + 1.1328 / (b - 3.4);
        let v_r = 0.9277 - 3.6224 / (b - 2.0);
        loop {
            let u = self.next_f64() - 0.5;
            let v = self.next_f64();
            let us = 0.5 - u.abs();
            let k = ((2.0 * a / us + b) * u + mean + 0.43).floor();
            if us >= 0.07 && v <= v_r {
                return k as u64;
            }
            if k < 0.0 || (us < 0.013 && v > us) {
                continue;
            }
            if v.ln() + inverse_alpha.ln() - (a / (us * us) + b).ln()
                <= -mean + k * log_mean - ln_factorial(k)
            {
                return k as u64;
            }
        }
    }

    /// A standard normal deviate (Box–Muller).
    pub fn normal(&mut self) -> f64 {
        let u1 = 1.0 - self.next_f64();
        let u2 = self.next_f64();
        (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()
    }
}

/// Draws resamples with replacement of a population given as counts per cell: each resample
/// places `N = Σ counts` draws, cell `i` chosen with probability `counts[i] / N` — exactly a
/// multinomial draw, but at a few nanoseconds per cell where a chain of binomials costs ~60.
///
/// How: independent Poisson counts with means `λ·counts[i]/N` for a `λ` a little below `N`
/// sum to some `S`; given `S`, they are a multinomial draw of `S` items, so `N − S` more single
/// draws (from an alias table) complete an exact multinomial draw of `N` (and the rare
/// `S > N` is drawn again). The Poisson draws use an inverse-CDF table per distinct count,
/// built once, and Hörmann's PTRS rejection sampler for very large means.
#[derive(Debug, Clone)]
pub struct Resampler {
    total: u64,
    /// Per cell: its table, or `usize::MAX` for a cell drawn by PTRS (`mean` then applies).
    table_of: Vec<usize>,
    means: Vec<f64>,
    tables: Vec<PoissonTable>,
    alias: AliasTable,
}

/// Means above this are drawn by rejection rather than from a table.
const TABLE_MEAN_LIMIT: f64 = 2_000.0;

impl Resampler {
    pub fn new(counts: &[u64]) -> Self {
        let total: u64 = counts.iter().sum();
        let n = total as f64;
        // Three standard deviations below N: S exceeds N about once in 700 draws.
        let lambda = (n - 3.0 * n.sqrt()).max(0.5 * n);
        let scale = if total > 0 { lambda / n } else { 0.0 };
        let mut by_count = std::collections::HashMap::new();
        let mut tables = Vec::new();
        let mut table_of = Vec::with_capacity(counts.len());
        let mut means = Vec::with_capacity(counts.len());
        for &count in counts {
            let mean = count as f64 * scale;
            means.push(mean);
            if mean > TABLE_MEAN_LIMIT {
                table_of.push(usize::MAX);
                continue;
            }
            let index = *by_count.entry(count).or_insert_with(|| {
                tables.push(PoissonTable::new(mean));
                tables.len() - 1
            });
            table_of.push(index);
        }
        let weights: Vec<f64> = counts.iter().map(|&c| c as f64).collect();
        Self {
            total,
            table_of,
            means,
            tables,
            alias: AliasTable::new(&weights),
        }
    }

    /// One resample: `out[i]` is how many of the `N` draws fell in cell `i`.
    pub fn draw(&self, rng: &mut SplitMix64, out: &mut [u64]) {
        debug_assert_eq!(out.len(), self.table_of.len());
        if self.total == 0 {
            out.fill(0);
            return;
        }
        loop {
            let mut sum = 0;
            for ((slot, &table), &mean) in out.iter_mut().zip(&self.table_of).zip(&self.means) {
                *slot = if table == usize::MAX {
                    rng.poisson(mean)
                } else {
                    self.tables[table].sample(rng)
                };
                sum += *slot;
            }
            if sum > self.total {
                continue;
            }
            for _ in sum..self.total {
                out[self.alias.sample(rng)] += 1;
            }
            return;
        }
    }
}

/// Inverse-CDF sampling of one Poisson distribution: the CDF up to far in the tail, with a
/// guide table that jumps close to the answer; the walk continues exactly past the table.
#[derive(Debug, Clone)]
struct PoissonTable {
    mean: f64,
    cdf: Vec<f64>,
    guide: Vec<u32>,
}

impl PoissonTable {
    fn new(mean: f64) -> Self {
        if mean <= 0.0 {
            return Self {
                mean: 0.0,
                cdf: vec![1.0],
                guide: vec![0],
            };
        }
        let last = (mean + 12.0 * mean.sqrt() + 12.0).ceil() as usize;
        let mut cdf = Vec::with_capacity(last + 1);
        let mut total = 0.0;
        let log_mean = mean.ln();
        for k in 0..=last {
            // In logs: e^(−mean) alone underflows for means above ~745.
            let k = k as f64;
            total += (k * log_mean - mean - ln_factorial(k)).exp();
            cdf.push(total);
        }
        let slots = cdf.len().next_power_of_two();
        let mut guide = Vec::with_capacity(slots);
        let mut k = 0;
        for j in 0..slots {
            let u = j as f64 / slots as f64;
            while k + 1 < cdf.len() && cdf[k] <= u {
                k += 1;
            }
            guide.push(k as u32);
        }
        Self { mean, cdf, guide }
    }

    fn sample(&self, rng: &mut SplitMix64) -> u64 {
        let u = rng.next_f64();
        let mut k = self.guide[(u * self.guide.len() as f64) as usize] as usize;
        while k < self.cdf.len() && self.cdf[k] <= u {
            k += 1;
        }
        if k < self.cdf.len() {
            return k as u64;
        }
        // Past the table (probability below 1e-30): keep walking the distribution.
        let mut k = (self.cdf.len() - 1) as f64;
        let mut pmf = (k * self.mean.ln() - self.mean - ln_factorial(k)).exp();
        let mut cdf = self.cdf[self.cdf.len() - 1];
        while cdf <= u && pmf > 0.0 {
            k += 1.0;
            pmf *= self.mean / k;
            cdf += pmf;
        }
        k as u64
    }
}

/// Walker's alias method (Vose's construction): one uniform integer and one uniform float per
/// draw from a fixed categorical distribution.
#[derive(Debug, Clone)]
struct AliasTable {
    probability: Vec<f64>,
    alias: Vec<u32>,
}

impl AliasTable {
    fn new(weights: &[f64]) -> Self {
        let n = weights.len();
        let total: f64 = weights.iter().sum();
        let mut probability: Vec<f64> = weights
            .iter()
            .map(|w| {
                if total > 0.0 {
                    w * n as f64 / total
                } else {
                    1.0
                }
            })
            .collect();
        let mut alias: Vec<u32> = (0..n as u32).collect();
        let (mut small, mut large): (Vec<usize>, Vec<usize>) =
            (0..n).partition(|&i| probability[i] < 1.0);
        while let (Some(s), Some(&l)) = (small.pop(), large.last()) {
            alias[s] = l as u32;
            probability[l] -= 1.0 - probability[s];
            if probability[l] < 1.0 {
                large.pop();
                small.push(l);
            }
        }
        // What is left is 1 up to rounding.
        for i in small.into_iter().chain(large) {
            probability[i] = 1.0;
        }
        Self { probability, alias }
    }

    fn sample(&self, rng: &mut SplitMix64) -> usize {
        let i = rng.below(self.probability.len());
        if rng.next_f64() < self.probability[i] {
            i
        } else {
            self.alias[i] as usize
        }
    }
}

/// `ln(k!)` for a whole number `k ≥ 0`: a table below 16, Stirling's series above (error
/// below 1e-12 there).
fn ln_factorial(k: f64) -> f64 {
    const TABLE: [f64; 16] = [
        0.0,
        0.0,
        std::f64::consts::LN_2,
        1.791_759_469_228_055,
        3.178_053_830_347_945_6,
        4.787_491_742_782_046,
        6.579_251_212_010_101,
        8.525_161_361_065_415,
        10.604_602_902_745_25,
        12.801_827_480_081_469,
        15.104_412_573_075_516,
        17.502_307_845_873_887,
        19.987_214_495_661_885,
        22.552_163_853_123_42,
        25.191_221_182_738_683,
        27.899_271_383_840_894,
    ];
    if k < 16.0 {
        return TABLE[k as usize];
    }
    let x = k + 1.0;
    let recip = 1.0 / x;
    let recip2 = recip * recip;
    (x - 0.5) * x.ln() - x
        + 0.5 * (std::f64::consts::TAU).ln()
        + recip * (1.0 / 12.0 - recip2 * (1.0 / 360.0 - recip2 / 1260.0))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The stream is fixed for good: seed 0 gives the reference outputs of Vigna's
    /// `splitmix64.c`, and the derived streams give what they gave when this was written
    /// (values computed independently, in Python, from the same definition).
    #[test]
    fn the_stream_is_the_published_one_forever() {
        let mut zero = SplitMix64::new(0);
        let expected = [
            0xe220_a839_7b1d_cdaf,
            0x6e78_9e6a_a1b9_65f4,
            0x06c4_5d18_8009_454f,
            0xf88b_b8a8_724c_81ec,
        ];
        for value in expected {
            assert_eq!(zero.next_u64(), value);
        }
        let mut seeded = SplitMix64::new(42);
        assert_eq!(seeded.next_u64(), 0xbdd7_3226_2feb_6e95);
        assert_eq!(seeded.next_u64(), 0x28ef_e333_b266_f103);
        let mut derived = SplitMix64::stream(7, 3);
        assert_eq!(derived.next_u64(), 0xd40d_0a4f_fa67_9748);
        assert_eq!(derived.next_u64(), 0x2000_c298_c383_e25c);
    }

    #[test]
    fn same_seed_same_stream_and_streams_differ() {
        let a: Vec<u64> = (0..4)
            .map({
                let mut r = SplitMix64::new(7);
                move |_| r.next_u64()
            })
            .collect();
        let b: Vec<u64> = (0..4)
            .map({
                let mut r = SplitMix64::new(7);
                move |_| r.next_u64()
            })
            .collect();
        assert_eq!(a, b);
        assert_ne!(
            SplitMix64::stream(7, 1).next_u64(),
            SplitMix64::stream(7, 2).next_u64()
        );
    }

    #[test]
    fn uniform_and_normal_moments() {
        let mut r = SplitMix64::new(42);
        let n = 200_000;
        let mean_u = (0..n).map(|_| r.next_f64()).sum::<f64>() / n as f64;
        assert!((mean_u - 0.5).abs() < 0.005, "{mean_u}");
        let xs: Vec<f64> = (0..n).map(|_| r.normal()).collect();
        let mean = xs.iter().sum::<f64>() / n as f64;
        let var = xs.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / n as f64;
        assert!(
            mean.abs() < 0.01 && (var - 1.0).abs() < 0.02,
            "{mean} {var}"
        );
        assert!((0..1000).all(|_| r.below(3) < 3));
        for shape in [0.5, 1.0, 3.0] {
            let g: Vec<f64> = (0..n).map(|_| r.gamma(shape)).collect();
            let mean = g.iter().sum::<f64>() / n as f64;
            let var = g.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / n as f64;
            assert!(
                (mean - shape).abs() < 0.02 * shape.max(1.0),
                "{shape}: {mean}"
            );
            assert!(
                (var - shape).abs() < 0.05 * shape.max(1.0),
                "{shape}: {var}"
            );
        }
        let d = r.dirichlet(&[1.0, 2.0, 3.0]);
        assert!((d.iter().sum::<f64>() - 1.0).abs() < 1e-12);
    }

    #[test]
    fn ln_factorial_is_exact_enough() {
        let mut exact = 0.0;
        for k in 1..200u32 {
            exact += f64::from(k).ln();
            let got = ln_factorial(f64::from(k));
            assert!(
                (got - exact).abs() < 1e-10 * exact.max(1.0),
                "{k}: {got} vs {exact}"
            );
        }
    }

    #[test]
    fn poisson_matches_its_distribution() {
        let mut r = SplitMix64::new(17);
        for mean in [0.3, 4.0, 25.0, 3_000.0] {
            let draws = 200_000;
            let mut histogram = std::collections::HashMap::new();
            for _ in 0..draws {
                *histogram.entry(r.poisson(mean)).or_insert(0u64) += 1;
            }
            let table = PoissonTable::new(mean);
            let mut from_table = std::collections::HashMap::new();
            for _ in 0..draws {
                *from_table.entry(table.sample(&mut r)).or_insert(0u64) += 1;
            }
            for seen in [&histogram, &from_table] {
                let (mut chi2, mut cells) = (0.0, 0);
                let top = (mean + 8.0 * mean.sqrt() + 10.0) as u64;
                for k in 0..=top {
                    let log_pmf = k as f64 * mean.ln() - mean - ln_factorial(k as f64);
                    let expected = draws as f64 * log_pmf.exp();
                    if expected >= 20.0 {
                        let got = *seen.get(&k).unwrap_or(&0) as f64;
                        chi2 += (got - expected).powi(2) / expected;
                        cells += 1;
                    }
                }
                let limit = cells as f64 + 4.5 * (2.0 * cells as f64).sqrt() + 10.0;
                assert!(
                    chi2 < limit,
                    "mean {mean}: chi2 {chi2:.1} over {cells} cells"
                );
            }
        }
    }

    #[test]
    fn resamples_are_multinomial_draws_of_the_population() {
        // Small and large counts (tables and rejection), an empty cell, and a total small
        // enough that the top-up matters.
        for counts in [vec![3u64, 0, 1, 6], vec![5_000, 1, 20, 0, 2_500]] {
            let total: u64 = counts.iter().sum();
            let resampler = Resampler::new(&counts);
            let mut r = SplitMix64::new(5);
            let mut out = vec![0; counts.len()];
            let rounds = 40_000;
            let mut mean = vec![0.0; counts.len()];
            let mut square = vec![0.0; counts.len()];
            for _ in 0..rounds {
                resampler.draw(&mut r, &mut out);
                assert_eq!(out.iter().sum::<u64>(), total);
                assert_eq!(out[counts.iter().position(|&c| c == 0).unwrap()], 0);
                for i in 0..counts.len() {
                    mean[i] += out[i] as f64 / rounds as f64;
                    square[i] += (out[i] as f64).powi(2) / rounds as f64;
                }
            }
            for i in 0..counts.len() {
                let p = counts[i] as f64 / total as f64;
                let (want_mean, want_var) = (total as f64 * p, total as f64 * p * (1.0 - p));
                let var = square[i] - mean[i] * mean[i];
                let tolerance = 4.0 * (want_var / rounds as f64).sqrt() + 1e-9;
                assert!(
                    (mean[i] - want_mean).abs() <= tolerance,
                    "{counts:?} cell {i}: mean {}",
                    mean[i]
                );
                // A multinomial's variance, not a Poisson's (which would be N·p).
                assert!(
                    (var - want_var).abs() <= 0.05 * want_var + 1e-9,
                    "{counts:?} cell {i}: var {var} vs {want_var}"
                );
            }
        }
    }
}

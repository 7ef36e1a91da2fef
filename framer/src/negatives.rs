//! Random-layer negatives: for every student `i`, one other student `j ≠ i` whose bands serve as the
//! same-image negative of IntraCL and InterCL.

use rand::{Rng, SeedableRng, rngs::StdRng};

use crate::FramerError;

/// Draws random-layer negatives as the reference does: uniformly among the other students, once per
/// student per step, shared by the whole batch.
///
/// The draw for a step depends only on `(seed, step)`, so a resumed run draws exactly what an
/// uninterrupted one would, with no generator state to save.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NegativeSampler {
    seed: u64,
}

impl NegativeSampler {
    /// A sampler seeded with `seed`.
    pub fn seeded(seed: u64) -> Self {
        Self { seed }
    }

    /// The seed this sampler was created with.
    pub fn seed(&self) -> u64 {
        self.seed
    }

    /// The negatives of training step `step`: one index per student, `result[i] ≠ i`, uniform over
    /// the other `num_students − 1`.
    pub fn sample(&self, step: u64, num_students: usize) -> Result<Vec<usize>, FramerError> {
        if num_students < 2 {
            return Err(FramerError::TooFewStudents(num_students));
        }
        let mut rng = StdRng::seed_from_u64(splitmix64(self.seed ^ splitmix64(step)));
        Ok((0..num_students)
            .map(|i| {
                let j = rng.random_range(0..num_students - 1);
                if j >= i { j + 1 } else { j }
            })
            .collect())
    }
}

/// The SplitMix64 finaliser (Steele, Lea and Flood, 2014): a bijective mixer of 64-bit words, so
/// that nearby inputs (consecutive steps, seeds that differ in one bit) give unrelated outputs.
///
/// Every seed that framer derives from `(seed, step, ...)` goes through this one function: the
/// [`NegativeSampler`] here, and the per-step random streams of the training engine.
///
/// ```
/// assert_eq!(framer::splitmix64(0), 0xE220_A839_7B1D_CDAF);
/// assert_ne!(framer::splitmix64(1), framer::splitmix64(2));
/// ```
#[doc(alias = "SplitMix64")]
pub fn splitmix64(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// Checks an explicit negative assignment: one entry per student, in range, never the student itself.
pub fn validate_negatives(negatives: &[usize], num_students: usize) -> Result<(), FramerError> {
    if negatives.len() != num_students {
        return Err(FramerError::InvalidNegatives(format!(
            "{} negatives given for {num_students} students",
            negatives.len()
        )));
    }
    for (i, &j) in negatives.iter().enumerate() {
        if j >= num_students {
            return Err(FramerError::InvalidNegatives(format!(
                "student {i} has negative {j}, but there are only {num_students} students"
            )));
        }
        if j == i {
            return Err(FramerError::InvalidNegatives(format!(
                "student {i} is its own negative; a negative must be another layer"
            )));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn negatives_are_other_layers_and_roughly_uniform() {
        let sampler = NegativeSampler::seeded(7);
        let s = 5;
        let mut counts = vec![vec![0usize; s]; s];
        for step in 0..4000 {
            let neg = sampler.sample(step, s).unwrap();
            validate_negatives(&neg, s).unwrap();
            for (i, j) in neg.into_iter().enumerate() {
                counts[i][j] += 1;
            }
        }
        for (i, row) in counts.iter().enumerate() {
            assert_eq!(row[i], 0);
            for (j, &c) in row.iter().enumerate() {
                if j != i {
                    // expected 1000 each; 5 sigma ≈ 140
                    assert!((860..1140).contains(&c), "count[{i}][{j}] = {c}");
                }
            }
        }
    }

    #[test]
    fn draws_depend_only_on_seed_and_step() {
        let a = NegativeSampler::seeded(3);
        let b = NegativeSampler::seeded(3);
        assert_eq!(a.sample(17, 6).unwrap(), b.sample(17, 6).unwrap());
        let differ = (0..20).any(|k| a.sample(k, 6).unwrap() != a.sample(k + 1, 6).unwrap());
        assert!(differ, "consecutive steps must not all draw the same negatives");
    }

    #[test]
    fn bad_negatives_are_rejected() {
        assert!(matches!(NegativeSampler::seeded(0).sample(0, 1), Err(FramerError::TooFewStudents(1))));
        assert!(validate_negatives(&[1, 1], 2).is_err());
        assert!(validate_negatives(&[1, 2], 2).is_err());
        assert!(validate_negatives(&[1], 2).is_err());
        assert!(validate_negatives(&[1, 0], 2).is_ok());
    }
}

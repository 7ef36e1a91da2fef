//! The scalar terms of the host path, per student and sample: the teacher keys, the band
//! energies, the cosines, IntraCL, InterCL, FAW and FAM. Each function here computes, for one
//! sample, what the tensor function of the same name in [`crate::loss`] computes for a batch.

use rayon::prelude::*;

use super::Scratch;
use super::spectra::{BandMasks, Geometry};

/// `F.normalize`'s lower bound on a norm.
pub(super) const NORM_EPS: f64 = 1e-12;
/// The reference's ε in band energies and FAW.
const ENERGY_EPS: f64 = 1e-9;

/// The bands of one evaluation: the masks in the stored layout with their multiplicities, the
/// teacher's unit keys and the in-band coefficient counts (all detached).
pub(super) struct Bands<'a> {
    pub(super) geo: Geometry,
    /// Per width frequency `v < F`, how many coefficients of the full spectrum it stands for.
    pub(super) multiplicity: &'a [f32],
    /// Low mask, stored layout `[B, C, F, H]`.
    pub(super) low: &'a [f32],
    /// High mask `1 − low`, stored layout.
    pub(super) high: &'a [f32],
    /// The teacher's low band `|X|·M / ‖|X|·M‖` per sample, stored layout (`k̂_low`).
    pub(super) key_low: Vec<f32>,
    /// The teacher's high band, normalised per sample (`k̂_high`).
    pub(super) key_high: Vec<f32>,
    /// Per plane (sample, channel): `Σ c·M + ε` for the low and the high band.
    counts: Vec<[f64; 2]>,
}

impl<'a> Bands<'a> {
    /// The keys and counts of `masks` for the teacher magnitudes `teacher` `[B, C, F, H]`.
    pub(super) fn new(
        geo: Geometry,
        multiplicity: &'a [f32],
        masks: &'a BandMasks,
        teacher: &[f32],
        scratch: &Scratch,
    ) -> Self {
        let Geometry { h, f, .. } = geo;
        let (sample_len, plane_len) = (geo.sample(), geo.plane());
        let mut key_low = scratch.take(geo.layer());
        let mut key_high = scratch.take(geo.layer());
        for (key, mask) in [(&mut key_low, &masks.low), (&mut key_high, &masks.high)] {
            key.par_chunks_mut(sample_len).enumerate().for_each(|(b, key)| {
                let range = b * sample_len..(b + 1) * sample_len;
                let (m, mask) = (&teacher[range.clone()], &mask[range]);
                for ((k, &x), &l) in key.iter_mut().zip(m).zip(mask) {
                    *k = x * l;
                }
                let norm = key
                    .chunks(h)
                    .enumerate()
                    .map(|(row, values)| multiplicity[row % f] as f64 * dot(values, values) as f64)
                    .sum::<f64>()
                    .sqrt()
                    .max(NORM_EPS);
                for k in key.iter_mut() {
                    *k = (*k as f64 / norm) as f32;
                }
            });
        }
        let counts = (0..geo.planes())
            .map(|p| {
                let mut count = [ENERGY_EPS; 2];
                for (v, &c) in multiplicity.iter().enumerate().take(f) {
                    let c = c as f64;
                    for u in 0..h {
                        let l = masks.low[p * plane_len + v * h + u] as f64;
                        count[0] += c * l;
                        count[1] += c * (1.0 - l);
                    }
                }
                count
            })
            .collect();
        Self { geo, multiplicity, low: &masks.low, high: &masks.high, key_low, key_high, counts }
    }

    /// FAW's band energies `[low, high]` of sample `b` of the magnitudes `mag` `[B, C, F, H]`:
    /// `mean_c[ Σ c·|X|·M / (Σ c·M + ε) ]`.
    #[doc(alias = "E_band")]
    pub(super) fn band_energies(&self, mag: &[f32], b: usize) -> [f64; 2] {
        let Geometry { channels, h, f, .. } = self.geo;
        let plane_len = self.geo.plane();
        let mut e = [0f64; 2];
        for c in 0..channels {
            let p = b * channels + c;
            let mut sums = [0f64; 2];
            for (v, &cw) in self.multiplicity.iter().enumerate().take(f) {
                let k = p * plane_len + v * h;
                let row = &mag[k..k + h];
                sums[0] += (cw * dot(row, &self.low[k..k + h])) as f64;
                sums[1] += (cw * dot(row, &self.high[k..k + h])) as f64;
            }
            e[0] += sums[0] / self.counts[p][0];
            e[1] += sums[1] / self.counts[p][1];
        }
        [e[0] / channels as f64, e[1] / channels as f64]
    }

    /// The sums of one student's sample `b` (magnitudes `m`, its negative's `n`, both
    /// `[B, C, F, H]`) from which every cosine follows, in one pass over its coefficients.
    pub(super) fn statistics(&self, m: &[f32], n: &[f32], b: usize) -> SampleStats {
        let Geometry { batch, channels, h, f, .. } = self.geo;
        let (sample_len, plane_len) = (self.geo.sample(), self.geo.plane());
        let (low, high, key_low, key_high) = (self.low, self.high, &self.key_low, &self.key_high);
        let mut st = SampleStats::new(batch);
        let (mut ql, mut qh) = (vec![0f32; h], vec![0f32; h]);
        for c in 0..channels {
            for (v, &cw) in self.multiplicity.iter().enumerate().take(f) {
                let cw = cw as f64;
                let at = |s: usize| s * sample_len + c * plane_len + v * h;
                let r = at(b)..at(b) + h;
                let (mr, lr, hr) = (&m[r.clone()], &low[r.clone()], &high[r.clone()]);
                for (((ql, qh), &m), (&l, &hi)) in ql.iter_mut().zip(&mut qh).zip(mr).zip(lr.iter().zip(hr)) {
                    *ql = m * l;
                    *qh = m * hi;
                }
                st.norm_low += cw * dot(&ql, &ql) as f64;
                st.norm_high += cw * dot(&qh, &qh) as f64;
                st.dot_key_low += cw * dot(&ql, &key_low[r.clone()]) as f64;
                st.dot_negative_low += cw * dot3(&ql, &n[r], lr) as f64;
                for b2 in 0..batch {
                    let r2 = at(b2)..at(b2) + h;
                    st.dot_keys_high[b2] += cw * dot(&qh, &key_high[r2.clone()]) as f64;
                    st.dot_negatives_high[b2] += cw * dot3(&qh, &n[r2.clone()], &high[r2]) as f64;
                }
            }
        }
        st.energy = self.band_energies(m, b);
        st.norm_low = st.norm_low.sqrt();
        st.norm_high = st.norm_high.sqrt();
        st
    }

    /// Returns the key buffers to the scratch.
    pub(super) fn recycle(self, scratch: &Scratch) {
        scratch.give([self.key_low, self.key_high]);
    }
}

/// Sums of one student and sample over the coefficients (weighted by multiplicity), with
/// `q = |X|·M` the student's masked magnitudes.
pub(super) struct SampleStats {
    /// `‖q_low‖` (a sum of squares until the end of [`Bands::statistics`]).
    pub(super) norm_low: f64,
    /// `‖q_high‖`.
    pub(super) norm_high: f64,
    /// `⟨q_low, k̂_low⟩`.
    dot_key_low: f64,
    /// `⟨q_low, n_low⟩` with the unnormalised negative of the same sample.
    dot_negative_low: f64,
    /// `⟨q_high, k̂_high[b']⟩` for every sample `b'`.
    dot_keys_high: Vec<f64>,
    /// `⟨q_high, n_high[b']⟩` (unnormalised) for every sample `b'`.
    dot_negatives_high: Vec<f64>,
    /// FAW band energies `[low, high]`.
    energy: [f64; 2],
}

impl SampleStats {
    fn new(batch: usize) -> Self {
        Self {
            norm_low: 0.0,
            norm_high: 0.0,
            dot_key_low: 0.0,
            dot_negative_low: 0.0,
            dot_keys_high: vec![0.0; batch],
            dot_negatives_high: vec![0.0; batch],
            energy: [0.0; 2],
        }
    }
}

/// The loss settings the terms depend on.
#[derive(Clone, Copy)]
pub(super) struct TermSettings {
    /// τ.
    pub(super) temperature: f64,
    /// FAW on.
    pub(super) adaptive_weight: bool,
    /// FAM on.
    pub(super) alignment_modulation: bool,
}

/// Every term of one student and sample, with the intermediates its gradient needs.
pub(super) struct SampleTerms {
    /// IntraCL.
    pub(super) intra: f64,
    /// InterCL.
    pub(super) inter: f64,
    /// FAM gates.
    pub(super) fam_low: f64,
    pub(super) fam_high: f64,
    /// FAW weights.
    pub(super) faw_low: f64,
    pub(super) faw_high: f64,
    /// `max(‖q‖, ε)` of the student's bands and of its negative's low band.
    pub(super) norm_low: f64,
    pub(super) norm_high: f64,
    pub(super) negative_norm_low: f64,
    /// Low-band cosines to the teacher and to the negative.
    pub(super) positive_low: f64,
    pub(super) negative_low: f64,
    /// High-band cosines to every sample's teacher, then to every sample's negative (`2B`).
    pub(super) logits: Vec<f64>,
    /// `softmax(logits/τ)`.
    pub(super) softmax: Vec<f64>,
}

/// The terms of sample `b` of a student with sums `st`, whose negative has sums `negative`
/// (every sample's), against the teacher's band energies `teacher_energy` of that sample.
pub(super) fn sample_terms(
    st: &SampleStats,
    negative: &[SampleStats],
    b: usize,
    teacher_energy: [f64; 2],
    settings: TermSettings,
) -> SampleTerms {
    let batch = negative.len();
    let tau = settings.temperature;
    let norm_low = st.norm_low.max(NORM_EPS);
    let norm_high = st.norm_high.max(NORM_EPS);
    let negative_norm_low = negative[b].norm_low.max(NORM_EPS);
    let positive_low = st.dot_key_low / norm_low;
    let negative_low = st.dot_negative_low / (norm_low * negative_norm_low);
    let intra = intra_contrastive_loss(positive_low, negative_low, tau);
    let logits: Vec<f64> = (0..2 * batch)
        .map(|k| {
            if k < batch {
                st.dot_keys_high[k] / norm_high
            } else {
                let nn = negative[k - batch].norm_high.max(NORM_EPS);
                st.dot_negatives_high[k - batch] / (norm_high * nn)
            }
        })
        .collect();
    let (inter, softmax) = inter_contrastive_loss(&logits, b, tau);
    let positive_high = logits[b];
    let (fam_low, fam_high) = if settings.alignment_modulation {
        (frequency_alignment_modulation(positive_low), frequency_alignment_modulation(positive_high))
    } else {
        (1.0, 1.0)
    };
    let (faw_low, faw_high) = if settings.adaptive_weight {
        (
            frequency_adaptive_weight(st.energy[0], teacher_energy[0]),
            frequency_adaptive_weight(st.energy[1], teacher_energy[1]),
        )
    } else {
        (1.0, 1.0)
    };
    SampleTerms {
        intra,
        inter,
        fam_low,
        fam_high,
        faw_low,
        faw_high,
        norm_low,
        norm_high,
        negative_norm_low,
        positive_low,
        negative_low,
        logits,
        softmax,
    }
}

/// IntraCL of one sample: `softplus((s₋ − s₊)/τ)` (see [`crate::intra_contrastive_loss`]).
#[doc(alias = "IntraCL")]
pub(super) fn intra_contrastive_loss(positive: f64, negative: f64, temperature: f64) -> f64 {
    let z = (negative - positive) / temperature;
    z.max(0.0) + (-z.abs()).exp().ln_1p()
}

/// InterCL of one sample: `logsumexp_k(logits/τ) − logits[label]/τ` (see
/// [`crate::inter_contrastive_loss`]), with `softmax(logits/τ)`.
#[doc(alias = "InterCL")]
pub(super) fn inter_contrastive_loss(logits: &[f64], label: usize, temperature: f64) -> (f64, Vec<f64>) {
    let max = logits.iter().fold(f64::NEG_INFINITY, |a, &l| a.max(l / temperature));
    let exp: Vec<f64> = logits.iter().map(|&l| (l / temperature - max).exp()).collect();
    let sum: f64 = exp.iter().sum();
    let loss = sum.ln() + max - logits[label] / temperature;
    (loss, exp.into_iter().map(|e| e / sum).collect())
}

/// FAW of one sample and band: `1 / (1 + |E_teacher − E_student| / (E_student + ε))` (see
/// [`crate::frequency_adaptive_weight`]).
#[doc(alias = "FAW")]
pub(super) fn frequency_adaptive_weight(student: f64, teacher: f64) -> f64 {
    1.0 / (1.0 + (teacher - student).abs() / (student + ENERGY_EPS))
}

/// FAM of one sample and band: `ReLU(cos)` (see [`crate::frequency_alignment_modulation`]).
#[doc(alias = "FAM")]
pub(super) fn frequency_alignment_modulation(cosine: f64) -> f64 {
    cosine.max(0.0)
}

/// Collects the `[S, B]` terms and the layer means (over the query samples).
pub(super) struct TermsBuilder {
    batch: usize,
    /// The samples whose terms enter the layer means.
    queries: std::ops::Range<usize>,
    /// intra, inter, fam_low, fam_high, faw_low, faw_high
    values: [Vec<f32>; 6],
    layer: Vec<f64>,
}

/// The `[S, B]` terms (intra, inter, fam_low, fam_high, faw_low, faw_high) and the `[S]` layer
/// losses.
pub(super) struct Terms {
    pub(super) values: [Vec<f32>; 6],
    pub(super) layer: Vec<f32>,
}

impl TermsBuilder {
    pub(super) fn new(num_students: usize, batch: usize, queries: std::ops::Range<usize>) -> Self {
        Self {
            batch,
            queries,
            values: std::array::from_fn(|_| vec![0.0; num_students * batch]),
            layer: vec![0.0; num_students],
        }
    }

    /// Records student `i`'s sample `b`.
    pub(super) fn push(&mut self, i: usize, b: usize, t: &SampleTerms) {
        let k = i * self.batch + b;
        let values = [t.intra, t.inter, t.fam_low, t.fam_high, t.faw_low, t.faw_high];
        for (slot, value) in self.values.iter_mut().zip(values) {
            slot[k] = value as f32;
        }
        if self.queries.contains(&b) {
            self.layer[i] += (t.fam_low * t.faw_low * t.intra + t.fam_high * t.faw_high * t.inter)
                / self.queries.len() as f64;
        }
    }

    /// The loss (mean over layers, or `Σ_i w_i·layer_i / S` with student weights) and the
    /// terms.
    pub(super) fn finish(self, weights: Option<&[f64]>) -> (f32, Terms) {
        let sum: f64 = match weights {
            Some(w) => self.layer.iter().zip(w).map(|(l, w)| l * w).sum(),
            None => self.layer.iter().sum(),
        };
        let loss = sum / self.layer.len() as f64;
        (loss as f32, Terms { values: self.values, layer: self.layer.iter().map(|&v| v as f32).collect() })
    }
}

/// `Σ a·b` with eight partial sums (vectorisable; the order is fixed, so results are
/// deterministic).
pub(super) fn dot(a: &[f32], b: &[f32]) -> f32 {
    let (ca, cb) = (a.chunks_exact(8), b.chunks_exact(8));
    let tail: f32 = ca.remainder().iter().zip(cb.remainder()).map(|(x, y)| x * y).sum();
    let mut acc = [0f32; 8];
    for (x, y) in ca.zip(cb) {
        for k in 0..8 {
            acc[k] += x[k] * y[k];
        }
    }
    acc.iter().sum::<f32>() + tail
}

/// `Σ a·b·c` with eight partial sums.
fn dot3(a: &[f32], b: &[f32], c: &[f32]) -> f32 {
    let (ca, cb, cc) = (a.chunks_exact(8), b.chunks_exact(8), c.chunks_exact(8));
    let tail: f32 = ca
        .remainder()
        .iter()
        .zip(cb.remainder())
        .zip(cc.remainder())
        .map(|((x, y), z)| x * (y * z))
        .sum();
    let mut acc = [0f32; 8];
    for ((x, y), z) in ca.zip(cb).zip(cc) {
        for k in 0..8 {
            acc[k] += x[k] * (y[k] * z[k]);
        }
    }
    acc.iter().sum::<f32>() + tail
}

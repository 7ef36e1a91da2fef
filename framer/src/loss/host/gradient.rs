//! The closed-form gradient of the host path with respect to every student (and `x_t`).
//!
//! Only the students' own masked magnitudes `q` carry gradient; the teacher, the negatives, FAW and
//! FAM are constants, as in the reference. For a cosine `s = ⟨q, k⟩/‖q‖` with a constant unit key
//! `k`, `∂s/∂q = (k − s·q/‖q‖)/‖q‖`; the magnitude `|X|` passes `∂/∂X = X/|X|`; and for a real
//! plane `y` with `X = F y` the gradient is `Re(F⁻¹ G)` (unnormalised inverse), computed as the
//! inverse transform of the Hermitian part of `G` so that two planes share one complex transform.

use rayon::prelude::*;
use rustfft::num_complex::Complex32;

use super::HostInput;
use super::spectra::{Geometry, POWER_EPS, Plans, Spectra, reflected};
use super::terms::{Bands, NORM_EPS, SampleStats, SampleTerms};

/// `∂loss/∂|X|` of one student and sample is, per coefficient,
/// `c·[ M·(a k̂_low + b n_low + s_low q) + (1−M)·(Σ_b' d_b' k̂_high[b'] + e_b' n_high[b'] + s_high q) ]`.
pub(super) struct GradientCoefficients {
    key_low: f32,
    negative_low: f32,
    self_low: f32,
    keys_high: Vec<f32>,
    negatives_high: Vec<f32>,
    self_high: f32,
}

impl GradientCoefficients {
    /// The coefficients of one student's sample with sums `st` and terms `t`, whose negative has
    /// sums `negative`; `scale` is the loss's weight of one (student, sample) term, `w_i/(S·B)` (`w_i`
    /// the student's weight, 1 by default).
    pub(super) fn new(st: &SampleStats, t: &SampleTerms, negative: &[SampleStats], b: usize, tau: f64, scale: f64) -> Self {
        let batch = negative.len();
        // ∂loss/∂(cosines), then ∂/∂q of each cosine
        let weight_low = t.fam_low * t.faw_low * scale;
        let weight_high = t.fam_high * t.faw_high * scale;
        let z = (t.negative_low - t.positive_low) / tau;
        let sigmoid = 1.0 / (1.0 + (-z).exp());
        let d_pos = -weight_low * sigmoid / tau;
        let d_neg = weight_low * sigmoid / tau;
        let d_logits: Vec<f64> = t
            .softmax
            .iter()
            .enumerate()
            .map(|(k, &p)| weight_high * (p - if k == b { 1.0 } else { 0.0 }) / tau)
            .collect();
        let along_q_high: f64 = d_logits.iter().zip(&t.logits).map(|(d, l)| d * l).sum();
        let (norm_low, norm_high) = (t.norm_low, t.norm_high);
        Self {
            key_low: (d_pos / norm_low) as f32,
            negative_low: (d_neg / (norm_low * t.negative_norm_low)) as f32,
            self_low: if st.norm_low < NORM_EPS {
                0.0
            } else {
                (-(d_pos * t.positive_low + d_neg * t.negative_low) / (norm_low * norm_low)) as f32
            },
            keys_high: (0..batch).map(|k| (d_logits[k] / norm_high) as f32).collect(),
            negatives_high: (0..batch)
                .map(|k| {
                    let nn = negative[k].norm_high.max(NORM_EPS);
                    (d_logits[batch + k] / (norm_high * nn)) as f32
                })
                .collect(),
            self_high: if st.norm_high < NORM_EPS { 0.0 } else { (-along_q_high / (norm_high * norm_high)) as f32 },
        }
    }
}

/// `∂loss/∂y_i` for every student's clean estimate `y_i` (or `∂loss/∂raw_i = scale·∂loss/∂y_i`
/// when `x_t` needs no gradient), `[S, B·C·H·W]` in one buffer, two planes of one student per
/// inverse transform.
pub(super) fn student_gradients(
    input: &HostInput<'_>,
    spectra: &Spectra,
    bands: &Bands<'_>,
    coefficients: &[Vec<GradientCoefficients>],
    plans: &Plans,
) -> Vec<f32> {
    let geo = bands.geo;
    let Geometry { channels, h, w, f, batch } = geo;
    let (planes, area, plane_len, sample_len) = (geo.planes(), geo.area(), geo.plane(), geo.sample());
    let (low, high, key_low, key_high) = (bands.low, bands.high, &bands.key_low, &bands.key_high);
    let multiplicity = bands.multiplicity;
    let mut gradients = vec![0f32; input.students.len() * planes * area];
    let items: Vec<(usize, usize, &mut [f32])> = gradients
        .chunks_mut(planes * area)
        .enumerate()
        .flat_map(|(i, g)| g.chunks_mut(2 * area).enumerate().map(move |(k, chunk)| (i, 2 * k, chunk)))
        .collect();
    items.into_par_iter().for_each_init(
        || (plans.buffers(), vec![Complex32::new(0.0, 0.0); 2 * area], vec![0f32; 2 * h]),
        |(buf, full, rows), (i, first, out)| {
            let count = out.len() / area;
            let m = spectra.student_magnitude(geo, i);
            let n = spectra.student_magnitude(geo, input.negatives[i]);
            let (sre, sim) = spectra.student_spectrum(geo, i);
            let (g_low, g_high) = rows.split_at_mut(h);
            for t in 0..count {
                let p = first + t;
                let (b, c) = (p / channels, p % channels);
                let co = &coefficients[i][b];
                let dst = &mut full[t * area..(t + 1) * area];
                for v in 0..f {
                    let cw = multiplicity[v];
                    let at = |s: usize| s * sample_len + c * plane_len + v * h;
                    let r = at(b)..at(b) + h;
                    // every row re-sliced to exactly `h`: no bounds checks, vectorisable loops
                    let (mr, lr, hr) = (&m[r.clone()][..h], &low[r.clone()][..h], &high[r.clone()][..h]);
                    let (nr, klr) = (&n[r.clone()][..h], &key_low[r.clone()][..h]);
                    let (xr, xi) = (&sre[r.clone()][..h], &sim[r][..h]);
                    let (g_low, g_high) = (&mut g_low[..h], &mut g_high[..h]);
                    for u in 0..h {
                        g_low[u] = co.key_low * klr[u] + (co.negative_low * nr[u] + co.self_low * mr[u]) * lr[u];
                        g_high[u] = co.self_high * mr[u] * hr[u];
                    }
                    for b2 in 0..batch {
                        let r2 = at(b2)..at(b2) + h;
                        let (khr, nr2, hr2) = (&key_high[r2.clone()][..h], &n[r2.clone()][..h], &high[r2][..h]);
                        let (ck, cn) = (co.keys_high[b2], co.negatives_high[b2]);
                        for u in 0..h {
                            g_high[u] += ck * khr[u] + cn * nr2[u] * hr2[u];
                        }
                    }
                    // ∂/∂X = ∂/∂|X| · X/|X| (zero where |X| was clamped)
                    let row = &mut dst[v * h..(v + 1) * h][..h];
                    for u in 0..h {
                        let dm = cw * (lr[u] * g_low[u] + hr[u] * g_high[u]);
                        let power = xr[u] * xr[u] + xi[u] * xi[u];
                        let factor = if power < POWER_EPS { 0.0 } else { dm / mr[u] };
                        row[u] = Complex32::new(xr[u] * factor, xi[u] * factor);
                    }
                }
                dst[f * h..].fill(Complex32::new(0.0, 0.0));
            }
            // Hermitian parts, packed as H₁ + i·H₂, inverse transformed: Re → plane 1, Im → plane 2
            let (first_plane, second_plane) = full.split_at(area);
            for v in 0..w {
                let mv = (w - v) % w;
                let (rows, mirror) = (v * h..(v + 1) * h, mv * h..(mv + 1) * h);
                let dst = &mut buf.transposed[rows.clone()];
                let first = first_plane[rows.clone()].iter().zip(reflected(&first_plane[mirror.clone()]));
                if count == 2 {
                    let second = second_plane[rows].iter().zip(reflected(&second_plane[mirror]));
                    for (o, ((&a1, &m1), (&a2, &m2))) in dst.iter_mut().zip(first.zip(second)) {
                        let h1 = (a1 + m1.conj()) * 0.5;
                        let h2 = (a2 + m2.conj()) * 0.5;
                        *o = Complex32::new(h1.re - h2.im, h1.im + h2.re);
                    }
                } else {
                    for (o, (&a1, &m1)) in dst.iter_mut().zip(first) {
                        *o = (a1 + m1.conj()) * 0.5;
                    }
                }
            }
            plans.inverse(buf);
            for t in 0..count {
                let b = (first + t) / channels;
                // ∂/∂y, or ∂/∂raw = scale·∂/∂y when x_t needs no gradient of its own
                let s = if input.want_x_t_gradient { 1.0 } else { input.scale[b] };
                for (o, z) in out[t * area..(t + 1) * area].iter_mut().zip(&buf.plain) {
                    *o = s * if t == 0 { z.re } else { z.im };
                }
            }
        },
    );
    gradients
}

/// From `∂loss/∂y_i` in `gradients` `[S, B·C·H·W]`: `∂loss/∂x_t = Σ_i offset_b · ∂loss/∂y_i`,
/// returned, while `gradients` becomes `∂loss/∂raw_i = scale_b · ∂loss/∂y_i`.
pub(super) fn x_t_gradient(input: &HostInput<'_>, gradients: &mut [f32], geo: Geometry) -> Vec<f32> {
    let (planes, area, channels) = (geo.planes(), geo.area(), geo.channels);
    let mut g = vec![0f32; planes * area];
    for student in gradients.chunks_mut(planes * area) {
        for p in 0..planes {
            let b = p / channels;
            let src = &mut student[p * area..(p + 1) * area];
            for (d, s) in g[p * area..(p + 1) * area].iter_mut().zip(src.iter_mut()) {
                *d += input.offset[b] * *s;
                *s *= input.scale[b];
            }
        }
    }
    g
}

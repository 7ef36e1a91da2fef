//! The FRAMER loss and its gradient computed on the host, for CPU backends.
//!
//! The tensor path ([`super::FramerLoss::forward`] on any backend) builds the loss from dense DFT
//! matrix products and lets autodiff differentiate it. On a CPU most of that time goes into the
//! dense transform and into dozens of elementwise passes over `[S, B, C, H, W]` tensors. This module
//! computes exactly the same quantities with FFTs (rustfft, two real planes packed into one complex
//! transform), fuses the per-band sums into one pass per student, and writes the gradient with
//! respect to every student in closed form (the adjoint of the FFT is an inverse FFT), in parallel
//! over planes and students.
//!
//! The closed-form gradient follows the reference's stop-gradients: only the students' own masked
//! magnitudes `q` carry gradient; the teacher, the negatives, FAW and FAM are constants. For a
//! cosine `s = ⟨q, k⟩/‖q‖` with a constant unit key `k`, `∂s/∂q = (k − s·q/‖q‖)/‖q‖`; the
//! magnitude `|X|` passes `∂/∂X = X/|X|`; and for a real plane `y` with `X = F y` the gradient is
//! `Re(F⁻¹ G)` (unnormalised inverse), computed as the inverse transform of the Hermitian part of
//! `G` so that two planes share one complex transform again.
//!
//! Spectra are kept transposed, `[width frequency v][height frequency u]`, for the width
//! frequencies `0..F` (`F = W/2 + 1` with multiplicities when the mask is conjugate-symmetric,
//! `F = W` otherwise); masks and the returned gradients use the plain layout.

use std::sync::{Arc, Mutex};

use rayon::prelude::*;
use rustfft::num_complex::Complex32;
use rustfft::{Fft, FftPlanner};

use crate::band::{quantile_by_selection, radial_low_mask_values};
use crate::{BandMaskKind, dft};

/// Everything the host computation reads. Plain row-major layouts.
pub(crate) struct HostInput<'a> {
    /// `[batch, channels, height, width]`.
    pub shape: [usize; 4],
    /// `S` raw student predictions, each `B·C·H·W` values.
    pub students: &'a [Vec<f32>],
    /// The raw teacher prediction, `B·C·H·W`.
    pub teacher: &'a [f32],
    /// The noisy input, `B·C·H·W`.
    pub x_t: &'a [f32],
    /// Per sample: clean = `scale·raw + offset·x_t`.
    pub offset: &'a [f32],
    /// Per sample scale of the raw prediction.
    pub scale: &'a [f32],
    /// The random-layer negative of each student.
    pub negatives: &'a [usize],
    /// An injected low mask `B·C·H·W`, if any.
    pub low_mask: Option<&'a [f32]>,
    /// How to compute the mask when none is injected.
    pub mask: BandMaskKind,
    /// Contrastive temperature.
    pub temperature: f64,
    /// FAW on.
    pub adaptive_weight: bool,
    /// FAM on.
    pub alignment_modulation: bool,
    /// Work on the full spectrum even when the half would do.
    pub full_spectrum: bool,
    /// Also return the gradient with respect to `x_t`.
    pub want_x_t_gradient: bool,
}

/// The loss, its detached terms and the gradients.
pub(crate) struct HostOutput {
    /// The loss (mean over layers).
    pub loss: f32,
    /// `[S]` layer losses.
    pub layer: Vec<f32>,
    /// `[S, B]` each.
    pub intra: Vec<f32>,
    pub inter: Vec<f32>,
    pub fam_low: Vec<f32>,
    pub fam_high: Vec<f32>,
    pub faw_low: Vec<f32>,
    pub faw_high: Vec<f32>,
    /// The low mask used, `B·C·H·W`, plain layout.
    pub low_mask: Vec<f32>,
    /// `∂loss/∂student_i` with respect to the raw predictions, `[S, B·C·H·W]` in one buffer
    /// (one large allocation is recycled by the allocator from call to call; many 1 MiB ones
    /// come back as fresh pages).
    pub student_gradients: Vec<f32>,
    /// `∂loss/∂x_t`, `B·C·H·W`, when asked for.
    pub x_t_gradient: Option<Vec<f32>>,
}

const NORM_EPS: f64 = 1e-12;
const ENERGY_EPS: f64 = 1e-9;
const POWER_EPS: f32 = 1e-30;

/// FFT plans and sizes shared by the worker threads.
struct Plans {
    h: usize,
    w: usize,
    row_forward: Arc<dyn Fft<f32>>,
    col_forward: Arc<dyn Fft<f32>>,
    row_inverse: Arc<dyn Fft<f32>>,
    col_inverse: Arc<dyn Fft<f32>>,
    scratch_len: usize,
}

impl Plans {
    fn new(h: usize, w: usize) -> Self {
        let mut planner = FftPlanner::<f32>::new();
        let row_forward = planner.plan_fft_forward(w);
        let col_forward = planner.plan_fft_forward(h);
        let row_inverse = planner.plan_fft_inverse(w);
        let col_inverse = planner.plan_fft_inverse(h);
        let scratch_len = [&row_forward, &col_forward, &row_inverse, &col_inverse]
            .iter()
            .map(|p| p.get_inplace_scratch_len())
            .max()
            .unwrap_or(0);
        Self { h, w, row_forward, col_forward, row_inverse, col_inverse, scratch_len }
    }

    /// Per-thread buffers: a plane, its transpose, the FFT scratch.
    fn buffers(&self) -> Buffers {
        let zero = Complex32::new(0.0, 0.0);
        Buffers {
            plain: vec![zero; self.h * self.w],
            transposed: vec![zero; self.h * self.w],
            scratch: vec![zero; self.scratch_len],
        }
    }

    /// `plain` `[H][W]` → its 2-D DFT in `transposed` `[W][H]` (`transposed[v·H + u] = X[u, v]`).
    fn forward(&self, b: &mut Buffers) {
        let (h, w) = (self.h, self.w);
        self.row_forward.process_with_scratch(&mut b.plain, &mut b.scratch);
        transpose(&b.plain, &mut b.transposed, h, w);
        self.col_forward.process_with_scratch(&mut b.transposed, &mut b.scratch);
    }

    /// `transposed` `[W][H]` spectrum → its unnormalised 2-D inverse DFT in `plain` `[H][W]`.
    fn inverse(&self, b: &mut Buffers) {
        let (h, w) = (self.h, self.w);
        self.col_inverse.process_with_scratch(&mut b.transposed, &mut b.scratch);
        transpose(&b.transposed, &mut b.plain, w, h);
        self.row_inverse.process_with_scratch(&mut b.plain, &mut b.scratch);
    }
}

/// `dst[c·rows + r] = src[r·cols + c]` for a row-major `[rows][cols]` source, in 8×8 tiles.
fn transpose(src: &[Complex32], dst: &mut [Complex32], rows: usize, cols: usize) {
    const TILE: usize = 8;
    for r0 in (0..rows).step_by(TILE) {
        let r1 = (r0 + TILE).min(rows);
        for c0 in (0..cols).step_by(TILE) {
            let c1 = (c0 + TILE).min(cols);
            for r in r0..r1 {
                let line = &src[r * cols + c0..r * cols + c1];
                for (c, &x) in (c0..c1).zip(line) {
                    dst[c * rows + r] = x;
                }
            }
        }
    }
}

/// The row `mirror[(n − u) mod n]` for `u = 0..n`: the reflection used by conjugate symmetry.
fn reflected<T>(row: &[T]) -> impl Iterator<Item = &T> {
    row.first().into_iter().chain(row.iter().skip(1).rev())
}

struct Buffers {
    plain: Vec<Complex32>,
    transposed: Vec<Complex32>,
    scratch: Vec<Complex32>,
}

/// Sizes of the stored (transposed, possibly half) spectra.
#[derive(Clone, Copy)]
struct Geometry {
    batch: usize,
    channels: usize,
    h: usize,
    /// Width frequencies stored.
    f: usize,
}

impl Geometry {
    /// Coefficients per plane in the stored layout.
    fn plane(&self) -> usize {
        self.f * self.h
    }
    /// Coefficients per sample in the stored layout.
    fn sample(&self) -> usize {
        self.channels * self.plane()
    }
    /// Values per layer in the stored layout.
    fn layer(&self) -> usize {
        self.batch * self.sample()
    }
}

/// Scratch buffers kept between calls: the spectra of a step are as large as the students, and
/// fresh pages cost more than the transforms on a CPU. At most [`POOL_SIZE`] buffers are kept;
/// they hold whatever the largest recent problem needed.
static POOL: Mutex<Vec<Vec<f32>>> = Mutex::new(Vec::new());
const POOL_SIZE: usize = 8;

/// A buffer of `len` values with unspecified contents (every caller overwrites all of them).
fn take(len: usize) -> Vec<f32> {
    let mut pool = POOL.lock().unwrap_or_else(|e| e.into_inner());
    let best = (0..pool.len()).filter(|&i| pool[i].capacity() >= len).min_by_key(|&i| pool[i].capacity());
    match best {
        Some(i) => {
            let mut v = pool.swap_remove(i);
            v.resize(len, 0.0);
            v.truncate(len);
            v
        }
        None => vec![0.0; len],
    }
}

/// Returns buffers to the pool, keeping the largest.
fn give(buffers: impl IntoIterator<Item = Vec<f32>>) {
    let mut pool = POOL.lock().unwrap_or_else(|e| e.into_inner());
    pool.extend(buffers);
    pool.sort_by_key(|v| std::cmp::Reverse(v.capacity()));
    pool.truncate(POOL_SIZE);
}

pub(crate) fn compute(input: &HostInput<'_>) -> HostOutput {
    let [batch, channels, h, w] = input.shape;
    let num_students = input.students.len();
    let planes = batch * channels;
    let area = h * w;

    // the injected mask decides whether the half spectrum suffices
    let symmetric = !input.full_spectrum
        && input.low_mask.is_none_or(|m| dft::is_conjugate_symmetric_values(m, h, w));
    let f = if symmetric { dft::half_width(w) } else { w };
    let geo = Geometry { batch, channels, h, f };
    let multiplicity: Vec<f32> = if symmetric { dft::half_multiplicity(w) } else { vec![1.0; w] };
    let plans = Plans::new(h, w);

    // ---- spectra of the teacher (layer 0) and the students (layers 1..=S) ----
    let layers = num_students + 1;
    let total_planes = layers * planes;
    // the clean estimate `scale·raw + offset·x_t` of global plane `g`, as (raw, x_t, scale, offset)
    let plane_source = |g: usize| {
        let (layer, p) = (g / planes, g % planes);
        let b = p / channels;
        let raw = if layer == 0 { input.teacher } else { &input.students[layer - 1] };
        (&raw[p * area..(p + 1) * area], &input.x_t[p * area..(p + 1) * area], input.scale[b], input.offset[b])
    };
    let plane_len = geo.plane();
    let mut re = take(total_planes * plane_len);
    let mut im = take(total_planes * plane_len);
    let mut magnitude = take(total_planes * plane_len);
    re.par_chunks_mut(2 * plane_len)
        .zip(im.par_chunks_mut(2 * plane_len))
        .zip(magnitude.par_chunks_mut(2 * plane_len))
        .enumerate()
        .for_each_init(
            || plans.buffers(),
            |buf, (pair, ((re, im), mag))| {
                let first = 2 * pair;
                let two = re.len() == 2 * plane_len;
                let (raw1, x1, s1, o1) = plane_source(first);
                if two {
                    let (raw2, x2, s2, o2) = plane_source(first + 1);
                    for (z, ((&r1, &x1), (&r2, &x2))) in
                        buf.plain.iter_mut().zip(raw1.iter().zip(x1).zip(raw2.iter().zip(x2)))
                    {
                        *z = Complex32::new(r1 * s1 + x1 * o1, r2 * s2 + x2 * o2);
                    }
                } else {
                    for (z, (&r1, &x1)) in buf.plain.iter_mut().zip(raw1.iter().zip(x1)) {
                        *z = Complex32::new(r1 * s1 + x1 * o1, 0.0);
                    }
                }
                plans.forward(buf);
                // unpack: X₁ = (Z[k] + conj Z[−k]) / 2, X₂ = −i (Z[k] − conj Z[−k]) / 2
                let z = &buf.transposed;
                let (first_re, second_re) = re.split_at_mut(plane_len.min(re.len()));
                let (first_im, second_im) = im.split_at_mut(plane_len.min(im.len()));
                let (first_mag, second_mag) = mag.split_at_mut(plane_len.min(mag.len()));
                for v in 0..f {
                    let rows = v * h..(v + 1) * h;
                    let mv = (w - v) % w;
                    let (row, mirror) = (&z[rows.clone()], &z[mv * h..(mv + 1) * h]);
                    let unpack = |u: usize, um: usize| {
                        let (a, m) = (row[u], mirror[um].conj());
                        let x1 = ((a.re + m.re) * 0.5, (a.im + m.im) * 0.5);
                        let x2 = ((a.im - m.im) * 0.5, (m.re - a.re) * 0.5);
                        (x1, x2)
                    };
                    let magnitude = |(r, i): (f32, f32)| (r * r + i * i).max(POWER_EPS).sqrt();
                    let (r1, i1, m1) = (&mut first_re[rows.clone()], &mut first_im[rows.clone()], &mut first_mag[rows.clone()]);
                    // u = 0 mirrors itself; u ≥ 1 mirrors h − u
                    let (x1, x2) = unpack(0, 0);
                    (r1[0], i1[0], m1[0]) = (x1.0, x1.1, magnitude(x1));
                    if two {
                        let (r2, i2, m2) = (&mut second_re[rows.clone()], &mut second_im[rows.clone()], &mut second_mag[rows.clone()]);
                        (r2[0], i2[0], m2[0]) = (x2.0, x2.1, magnitude(x2));
                        for u in 1..h {
                            let (x1, x2) = unpack(u, h - u);
                            (r1[u], i1[u], m1[u]) = (x1.0, x1.1, magnitude(x1));
                            (r2[u], i2[u], m2[u]) = (x2.0, x2.1, magnitude(x2));
                        }
                    } else {
                        for u in 1..h {
                            let (x1, _) = unpack(u, h - u);
                            (r1[u], i1[u], m1[u]) = (x1.0, x1.1, magnitude(x1));
                        }
                    }
                }
            },
        );

    // ---- the low mask, plain [B, C, H, W], and its stored layout ----
    let low_plain: Vec<f32> = match input.low_mask {
        Some(m) => m.to_vec(),
        None => match input.mask {
            BandMaskKind::Radial { radius } => {
                let ring = radial_low_mask_values(h, w, radius);
                ring.iter().copied().cycle().take(planes * area).collect()
            }
            BandMaskKind::Quantile { cutoff } => {
                // the teacher's full magnitude spectrum in the plain layout
                let teacher = &magnitude[..planes * plane_len];
                let mut full = vec![0f32; planes * area];
                for p in 0..planes {
                    let stored = &teacher[p * plane_len..(p + 1) * plane_len];
                    let out = &mut full[p * area..(p + 1) * area];
                    for u in 0..h {
                        for v in 0..w {
                            out[u * w + v] = if v < f {
                                stored[v * h + u]
                            } else {
                                stored[(w - v) * h + (h - u) % h]
                            };
                        }
                    }
                }
                let per_sample = channels * area;
                let mut mask = vec![0f32; planes * area];
                full.par_chunks(per_sample).zip(mask.par_chunks_mut(per_sample)).for_each(
                    |(values, mask)| {
                        let q = quantile_by_selection(&mut values.to_vec(), cutoff);
                        for (m, &x) in mask.iter_mut().zip(values) {
                            *m = if x < q { 1.0 } else { 0.0 };
                        }
                    },
                );
                mask
            }
        },
    };
    let mut low = vec![0f32; planes * plane_len];
    for p in 0..planes {
        for v in 0..f {
            for u in 0..h {
                low[p * plane_len + v * h + u] = low_plain[p * area + u * w + v];
            }
        }
    }
    let high: Vec<f32> = low.iter().map(|&l| 1.0 - l).collect();

    // ---- teacher keys and band energies (all detached) ----
    let sample_len = geo.sample();
    let teacher_mag = &magnitude[..geo.layer()];
    let mut key_low = take(geo.layer());
    let mut key_high = take(geo.layer());
    for (key, mask) in [(&mut key_low, &low), (&mut key_high, &high)] {
        key.par_chunks_mut(sample_len).enumerate().for_each(|(b, key)| {
            let range = b * sample_len..(b + 1) * sample_len;
            let (m, mask) = (&teacher_mag[range.clone()], &mask[range]);
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
    // per (sample, channel): Σ c·M + ε for both bands
    let counts: Vec<[f64; 2]> = (0..planes)
        .map(|p| {
            let mut count = [ENERGY_EPS; 2];
            for v in 0..f {
                let c = multiplicity[v] as f64;
                for u in 0..h {
                    let l = low[p * plane_len + v * h + u] as f64;
                    count[0] += c * l;
                    count[1] += c * (1.0 - l);
                }
            }
            count
        })
        .collect();
    let band_energy = |mag: &[f32], b: usize| -> [f64; 2] {
        let mut e = [0f64; 2];
        for c in 0..channels {
            let p = b * channels + c;
            let mut sums = [0f64; 2];
            for (v, &cw) in multiplicity.iter().enumerate().take(f) {
                let k = p * plane_len + v * h;
                let row = &mag[k..k + h];
                sums[0] += (cw * dot(row, &low[k..k + h])) as f64;
                sums[1] += (cw * dot(row, &high[k..k + h])) as f64;
            }
            e[0] += sums[0] / counts[p][0];
            e[1] += sums[1] / counts[p][1];
        }
        [e[0] / channels as f64, e[1] / channels as f64]
    };
    let teacher_energy: Vec<[f64; 2]> = (0..batch).map(|b| band_energy(teacher_mag, b)).collect();

    // ---- pass 1: every student's norms, dots and energies ----
    let layer_range = |i: usize| (i + 1) * geo.layer()..(i + 2) * geo.layer();
    let student_mag = |i: usize| &magnitude[layer_range(i)];
    let stats: Vec<Vec<SampleStats>> = (0..num_students)
        .into_par_iter()
        .map(|i| {
            let m = student_mag(i);
            let n = student_mag(input.negatives[i]);
            (0..batch)
                .map(|b| {
                    let mut st = SampleStats::new(batch);
                    let (mut ql, mut qh) = (vec![0f32; h], vec![0f32; h]);
                    for c in 0..channels {
                        for (v, &cw) in multiplicity.iter().enumerate().take(f) {
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
                    st.energy = band_energy(m, b);
                    st.norm_low = st.norm_low.sqrt();
                    st.norm_high = st.norm_high.sqrt();
                    st
                })
                .collect()
        })
        .collect();

    // ---- the terms and the scalar coefficients of the gradient ----
    let tau = input.temperature;
    let scale = 1.0 / (num_students * batch) as f64;
    let mut out = TermsBuilder::new(num_students, batch);
    let mut coefficients: Vec<Vec<GradientCoefficients>> = Vec::with_capacity(num_students);
    for (i, student) in stats.iter().enumerate() {
        let negative = &stats[input.negatives[i]];
        let mut row = Vec::with_capacity(batch);
        for (b, st) in student.iter().enumerate() {
            let norm_low = st.norm_low.max(NORM_EPS);
            let norm_high = st.norm_high.max(NORM_EPS);
            let neg_norm_low = negative[b].norm_low.max(NORM_EPS);
            let positive_low = st.dot_key_low / norm_low;
            let negative_low = st.dot_negative_low / (norm_low * neg_norm_low);
            let z = (negative_low - positive_low) / tau;
            let intra = z.max(0.0) + (-z.abs()).exp().ln_1p();
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
            let max = logits.iter().fold(f64::NEG_INFINITY, |a, &l| a.max(l / tau));
            let exp: Vec<f64> = logits.iter().map(|&l| (l / tau - max).exp()).collect();
            let sum: f64 = exp.iter().sum();
            let positive_high = logits[b];
            let inter = sum.ln() + max - positive_high / tau;
            let (fam_low, fam_high) = if input.alignment_modulation {
                (positive_low.max(0.0), positive_high.max(0.0))
            } else {
                (1.0, 1.0)
            };
            let (faw_low, faw_high) = if input.adaptive_weight {
                let faw = |t: f64, s: f64| 1.0 / (1.0 + (t - s).abs() / (s + ENERGY_EPS));
                (faw(teacher_energy[b][0], st.energy[0]), faw(teacher_energy[b][1], st.energy[1]))
            } else {
                (1.0, 1.0)
            };
            out.push(i, b, [intra, inter, fam_low, fam_high, faw_low, faw_high]);

            // ∂loss/∂(cosines), then ∂/∂q of each cosine
            let weight_low = fam_low * faw_low * scale;
            let weight_high = fam_high * faw_high * scale;
            let sigmoid = 1.0 / (1.0 + (-z).exp());
            let d_pos = -weight_low * sigmoid / tau;
            let d_neg = weight_low * sigmoid / tau;
            let d_logits: Vec<f64> = exp
                .iter()
                .enumerate()
                .map(|(k, &e)| weight_high * (e / sum - if k == b { 1.0 } else { 0.0 }) / tau)
                .collect();
            let along_q_high: f64 = d_logits.iter().zip(&logits).map(|(d, l)| d * l).sum();
            row.push(GradientCoefficients {
                key_low: (d_pos / norm_low) as f32,
                negative_low: (d_neg / (norm_low * neg_norm_low)) as f32,
                self_low: if st.norm_low < NORM_EPS {
                    0.0
                } else {
                    (-(d_pos * positive_low + d_neg * negative_low) / (norm_low * norm_low)) as f32
                },
                keys_high: (0..batch).map(|k| (d_logits[k] / norm_high) as f32).collect(),
                negatives_high: (0..batch)
                    .map(|k| {
                        let nn = negative[k].norm_high.max(NORM_EPS);
                        (d_logits[batch + k] / (norm_high * nn)) as f32
                    })
                    .collect(),
                self_high: if st.norm_high < NORM_EPS {
                    0.0
                } else {
                    (-along_q_high / (norm_high * norm_high)) as f32
                },
            });
        }
        coefficients.push(row);
    }
    let (loss, terms) = out.finish();

    // ---- pass 2: gradients, two planes of one student per inverse transform ----
    let mut student_gradients = vec![0f32; num_students * planes * area];
    let items: Vec<(usize, usize, &mut [f32])> = student_gradients
        .chunks_mut(planes * area)
        .enumerate()
        .flat_map(|(i, g)| g.chunks_mut(2 * area).enumerate().map(move |(k, chunk)| (i, 2 * k, chunk)))
        .collect();
    items.into_par_iter().for_each_init(
        || (plans.buffers(), vec![Complex32::new(0.0, 0.0); 2 * area], vec![0f32; 2 * h]),
        |(buf, full, rows), (i, first, out)| {
            let count = out.len() / area;
            let m = student_mag(i);
            let n = student_mag(input.negatives[i]);
            let (sre, sim) = (&re[layer_range(i)], &im[layer_range(i)]);
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
    give([re, im, magnitude, key_low, key_high]);

    // ∂/∂x_t = Σ_i offset_b · ∂/∂y_i, then ∂/∂raw_i = scale_b · ∂/∂y_i
    let x_t_gradient = input.want_x_t_gradient.then(|| {
        let mut g = vec![0f32; planes * area];
        for student in student_gradients.chunks_mut(planes * area) {
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
    });

    let [intra, inter, fam_low, fam_high, faw_low, faw_high] = terms.values;
    HostOutput {
        loss,
        layer: terms.layer,
        intra,
        inter,
        fam_low,
        fam_high,
        faw_low,
        faw_high,
        low_mask: low_plain,
        student_gradients,
        x_t_gradient,
    }
}

/// `Σ a·b` with eight partial sums (vectorisable; the order is fixed, so results are
/// deterministic).
fn dot(a: &[f32], b: &[f32]) -> f32 {
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

/// Sums of one student and sample over the coefficients (weighted by multiplicity).
struct SampleStats {
    /// `‖q_low‖`, then `‖q_high‖` (square roots taken at the end of pass 1).
    norm_low: f64,
    norm_high: f64,
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

/// `∂loss/∂|X|` of one student and sample is, per coefficient,
/// `c·[ M·(a k̂_low + b n_low + s_low q) + (1−M)·(Σ_b' d_b' k̂_high[b'] + e_b' n_high[b'] + s_high q) ]`.
struct GradientCoefficients {
    key_low: f32,
    negative_low: f32,
    self_low: f32,
    keys_high: Vec<f32>,
    negatives_high: Vec<f32>,
    self_high: f32,
}

/// Collects the `[S, B]` terms and the layer means.
struct TermsBuilder {
    batch: usize,
    /// intra, inter, fam_low, fam_high, faw_low, faw_high
    values: [Vec<f32>; 6],
    layer: Vec<f64>,
}

struct Terms {
    values: [Vec<f32>; 6],
    layer: Vec<f32>,
}

impl TermsBuilder {
    fn new(num_students: usize, batch: usize) -> Self {
        Self {
            batch,
            values: std::array::from_fn(|_| vec![0.0; num_students * batch]),
            layer: vec![0.0; num_students],
        }
    }

    fn push(&mut self, i: usize, b: usize, [intra, inter, fam_low, fam_high, faw_low, faw_high]: [f64; 6]) {
        let k = i * self.batch + b;
        for (slot, value) in self.values.iter_mut().zip([intra, inter, fam_low, fam_high, faw_low, faw_high]) {
            slot[k] = value as f32;
        }
        self.layer[i] += (fam_low * faw_low * intra + fam_high * faw_high * inter) / self.batch as f64;
    }

    fn finish(self) -> (f32, Terms) {
        let loss = self.layer.iter().sum::<f64>() / self.layer.len() as f64;
        (loss as f32, Terms { values: self.values, layer: self.layer.iter().map(|&v| v as f32).collect() })
    }
}

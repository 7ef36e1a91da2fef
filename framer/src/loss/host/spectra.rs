//! The spectra of the host path: FFT plans, the forward transform of every clean estimate (two real
//! planes packed into one complex transform) and the low-band mask.
//!
//! Spectra are kept transposed, `[width frequency v][height frequency u]`, for the width
//! frequencies `0..F` (`F = W/2 + 1` with multiplicities when the mask is conjugate-symmetric,
//! `F = W` otherwise); masks use the plain layout `[B, C, H, W]`.

use std::sync::Arc;

use rayon::prelude::*;
use rustfft::num_complex::Complex32;
use rustfft::{Fft, FftPlanner};

use super::{HostInput, Scratch};
use crate::BandMaskKind;
use crate::band::{quantile_by_selection, radial_low_mask_values};

/// `|X|` is clamped to `√POWER_EPS` so that `X/|X|` stays finite.
pub(super) const POWER_EPS: f32 = 1e-30;

/// FFT plans and sizes shared by the worker threads.
pub(super) struct Plans {
    h: usize,
    w: usize,
    row_forward: Arc<dyn Fft<f32>>,
    col_forward: Arc<dyn Fft<f32>>,
    row_inverse: Arc<dyn Fft<f32>>,
    col_inverse: Arc<dyn Fft<f32>>,
    scratch_len: usize,
}

impl Plans {
    pub(super) fn new(h: usize, w: usize) -> Self {
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
    pub(super) fn buffers(&self) -> Buffers {
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
    pub(super) fn inverse(&self, b: &mut Buffers) {
        let (h, w) = (self.h, self.w);
        self.col_inverse.process_with_scratch(&mut b.transposed, &mut b.scratch);
        transpose(&b.transposed, &mut b.plain, w, h);
        self.row_inverse.process_with_scratch(&mut b.plain, &mut b.scratch);
    }
}

/// One worker's transform buffers.
pub(super) struct Buffers {
    /// A plane in the plain layout `[H][W]`.
    pub(super) plain: Vec<Complex32>,
    /// A spectrum in the transposed layout `[W][H]`.
    pub(super) transposed: Vec<Complex32>,
    scratch: Vec<Complex32>,
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
pub(super) fn reflected<T>(row: &[T]) -> impl Iterator<Item = &T> {
    row.first().into_iter().chain(row.iter().skip(1).rev())
}

/// Sizes of the stored (transposed, possibly half) spectra.
#[derive(Clone, Copy)]
pub(super) struct Geometry {
    pub(super) batch: usize,
    pub(super) channels: usize,
    pub(super) h: usize,
    pub(super) w: usize,
    /// Width frequencies stored.
    pub(super) f: usize,
}

impl Geometry {
    /// Real planes per layer, `B·C`.
    pub(super) fn planes(&self) -> usize {
        self.batch * self.channels
    }
    /// Values per plane in the plain layout.
    pub(super) fn area(&self) -> usize {
        self.h * self.w
    }
    /// Coefficients per plane in the stored layout.
    pub(super) fn plane(&self) -> usize {
        self.f * self.h
    }
    /// Coefficients per sample in the stored layout.
    pub(super) fn sample(&self) -> usize {
        self.channels * self.plane()
    }
    /// Values per layer in the stored layout.
    pub(super) fn layer(&self) -> usize {
        self.batch * self.sample()
    }
}

/// The spectra of the teacher (layer 0) and the students (layers `1..=S`), each `[S+1, B, C, F, H]`
/// in the stored layout, in buffers taken from the loss's scratch.
pub(super) struct Spectra {
    /// Real parts.
    pub(super) re: Vec<f32>,
    /// Imaginary parts.
    pub(super) im: Vec<f32>,
    /// `|X|`, clamped below by `√POWER_EPS`.
    pub(super) magnitude: Vec<f32>,
}

impl Spectra {
    /// The transforms of the clean estimates `scale·raw + offset·x_t` of the teacher and every
    /// student, two planes per complex transform, in parallel.
    pub(super) fn transform(input: &HostInput<'_>, geo: Geometry, plans: &Plans, scratch: &Scratch) -> Self {
        let Geometry { channels, h, w, f, .. } = geo;
        let planes = geo.planes();
        let area = geo.area();
        let total_planes = (input.students.len() + 1) * planes;
        // the clean estimate of global plane `g`, as (raw, x_t, scale, offset)
        let plane_source = |g: usize| {
            let (layer, p) = (g / planes, g % planes);
            let b = p / channels;
            let raw = if layer == 0 { input.teacher } else { &input.students[layer - 1] };
            (&raw[p * area..(p + 1) * area], &input.x_t[p * area..(p + 1) * area], input.scale[b], input.offset[b])
        };
        let plane_len = geo.plane();
        let mut re = scratch.take(total_planes * plane_len);
        let mut im = scratch.take(total_planes * plane_len);
        let mut magnitude = scratch.take(total_planes * plane_len);
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
        Self { re, im, magnitude }
    }

    /// The teacher's magnitudes, `[B, C, F, H]`.
    pub(super) fn teacher_magnitude(&self, geo: Geometry) -> &[f32] {
        &self.magnitude[..geo.layer()]
    }

    /// Student `i`'s magnitudes, `[B, C, F, H]`.
    pub(super) fn student_magnitude(&self, geo: Geometry, i: usize) -> &[f32] {
        &self.magnitude[(i + 1) * geo.layer()..(i + 2) * geo.layer()]
    }

    /// Student `i`'s real and imaginary parts, `[B, C, F, H]` each.
    pub(super) fn student_spectrum(&self, geo: Geometry, i: usize) -> (&[f32], &[f32]) {
        let range = (i + 1) * geo.layer()..(i + 2) * geo.layer();
        (&self.re[range.clone()], &self.im[range])
    }

    /// Returns the buffers to the scratch.
    pub(super) fn recycle(self, scratch: &Scratch) {
        scratch.give([self.re, self.im, self.magnitude]);
    }
}

/// The low band: the plain mask `[B, C, H, W]` (returned to the caller) and the stored layouts of
/// the low and the high (`1 − low`) masks.
pub(super) struct BandMasks {
    /// The low mask, plain layout.
    pub(super) plain: Vec<f32>,
    /// The low mask, stored layout `[B, C, F, H]`.
    pub(super) low: Vec<f32>,
    /// `1 − low`, stored layout.
    pub(super) high: Vec<f32>,
}

impl BandMasks {
    /// The injected mask, or the one `kind` computes from the teacher's spectrum.
    pub(super) fn new(injected: Option<&[f32]>, kind: BandMaskKind, spectra: &Spectra, geo: Geometry) -> Self {
        let Geometry { channels, h, w, f, .. } = geo;
        let (planes, area, plane_len) = (geo.planes(), geo.area(), geo.plane());
        let plain: Vec<f32> = match injected {
            Some(m) => m.to_vec(),
            None => match kind {
                BandMaskKind::Radial { radius } => {
                    let ring = radial_low_mask_values(h, w, radius);
                    ring.iter().copied().cycle().take(planes * area).collect()
                }
                BandMaskKind::Quantile { cutoff } => {
                    // the teacher's full magnitude spectrum in the plain layout
                    let teacher = spectra.teacher_magnitude(geo);
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
                    low[p * plane_len + v * h + u] = plain[p * area + u * w + v];
                }
            }
        }
        let high: Vec<f32> = low.iter().map(|&l| 1.0 - l).collect();
        Self { plain, low, high }
    }
}

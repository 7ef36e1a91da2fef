//! The deterministic weights and images of the MUSIQ and MANIQA oracles
//! (`scripts/musiq-oracle.py`, `scripts/maniqa-oracle.py` compute the same in Python), shared by
//! `tests/musiq.rs`, `tests/maniqa.rs`, the `nr_metrics_time` example and framer-train's CLI
//! tests. Keep them in step with the scripts.

#![allow(dead_code)]

use std::collections::BTreeMap;

use framer_iqa::maniqa::{self, ManiqaConfig};
use framer_iqa::musiq::{self, MusiqConfig};
use framer_iqa::weight_file::HostTensor;
use framer_metrics::MetricImage;

/// The oracle's weights: `s = sin(2.3 i + k)` (i = flat index, k = index of the tensor in
/// state-dict order), then `0.02 s` for a bias, `s` for a convolution, `s / √fan_in` for a
/// linear weight, `1 + 0.2 s` for a norm scale and `0.3 s` for the class token and the
/// embeddings; rounded to f32.
pub fn musiq_formula(name: &str, k: usize, shape: &[usize]) -> HostTensor {
    let n: usize = shape.iter().product();
    let data = (0..n)
        .map(|i| {
            let s = (2.3 * i as f64 + k as f64).sin();
            let v = if name.ends_with(".bias") {
                0.02 * s
            } else if shape.len() == 4 {
                s
            } else if shape.len() == 2 && name.ends_with(".weight") {
                s / (shape[1] as f64).sqrt()
            } else if shape.len() == 1 {
                1.0 + 0.2 * s
            } else {
                0.3 * s
            };
            v as f32
        })
        .collect();
    HostTensor {
        shape: shape.to_vec(),
        data,
    }
}

/// Every state-dict entry of `config` by [`musiq_formula`].
pub fn musiq_weights(config: &MusiqConfig) -> BTreeMap<String, HostTensor> {
    musiq::expected_tensors(config)
        .iter()
        .enumerate()
        .map(|(k, (name, shape))| (name.clone(), musiq_formula(name, k, shape)))
        .collect()
}

/// The oracle's image, `[H, W, 3]`: `0.5 + 0.4 sin(0.21 x + 0.17 y + 1.3 c)
/// + 0.3 sin(0.9 x − 0.7 y + 0.5 c)`, clipped to `[0, 1]`.
pub fn musiq_image(width: usize, height: usize) -> MetricImage {
    let mut data = Vec::with_capacity(width * height * 3);
    for y in 0..height {
        for x in 0..width {
            for c in 0..3 {
                let (xf, yf, cf) = (x as f64, y as f64, c as f64);
                let v = 0.5
                    + 0.4 * (0.21 * xf + 0.17 * yf + 1.3 * cf).sin()
                    + 0.3 * (0.9 * xf - 0.7 * yf + 0.5 * cf).sin();
                data.push(v.clamp(0.0, 1.0) as f32);
            }
        }
    }
    MetricImage::from_hwc(width, height, data).expect("finite values, positive size")
}

/// The oracle's weights: `s = sin(2.3 i + k)` (i = flat index, k = index of the entry in
/// state-dict order, buffers counted), then `0.2 s` for a relative position bias table,
/// `0.1 s` for the class token and position embedding, `0.02 s` for a bias, `1 + 0.1 s` for a
/// LayerNorm weight, `0.25 s / √fan_in` for the TABlocks' query and key weights (moderate
/// attention logits) and `2 s / √fan_in` for the other linear and convolution weights.
pub fn maniqa_formula(name: &str, k: usize, shape: &[usize]) -> HostTensor {
    let n: usize = shape.iter().product();
    let data = (0..n)
        .map(|i| {
            let s = (2.3 * i as f64 + k as f64).sin();
            let v = if name.ends_with("relative_position_bias_table") {
                0.2 * s
            } else if name.ends_with("cls_token") || name.ends_with("pos_embed") {
                0.1 * s
            } else if name.ends_with(".bias") {
                0.02 * s
            } else if shape.len() == 1 {
                1.0 + 0.1 * s
            } else if name.ends_with("c_q.weight") || name.ends_with("c_k.weight") {
                0.25 * s / (shape[1] as f64).sqrt()
            } else {
                let fan_in: usize = shape[1..].iter().product();
                2.0 * s / (fan_in as f64).sqrt()
            };
            v as f32
        })
        .collect();
    HostTensor {
        shape: shape.to_vec(),
        data,
    }
}

pub fn is_buffer(name: &str) -> bool {
    name.ends_with("relative_position_index") || name.ends_with("attn_mask")
}

/// Every float parameter of `config` by the formula (the buffers are left out, as a
/// checkpoint reader that drops integer tensors would).
pub fn maniqa_weights(config: &ManiqaConfig) -> BTreeMap<String, HostTensor> {
    maniqa::expected_tensors(config)
        .iter()
        .enumerate()
        .filter(|(_, (name, _))| !is_buffer(name))
        .map(|(k, (name, shape))| (name.clone(), maniqa_formula(name, k, shape)))
        .collect()
}

/// The oracle's images, `[H, W, 3]`: `0.5 + 0.3 sin(0.21 x + 0.17 y + 1.3 c)
/// + 0.1 sin(0.9 x − 0.7 y + 0.5 c + kind) + 0.05 sin(2.1 x + 1.3 y + 0.01 x y − c)`.
pub fn maniqa_image(width: usize, height: usize, kind: u8) -> MetricImage {
    let mut data = Vec::with_capacity(width * height * 3);
    for y in 0..height {
        for x in 0..width {
            for c in 0..3 {
                let (xf, yf, cf, kf) = (x as f64, y as f64, c as f64, f64::from(kind));
                let v = 0.5
                    + 0.3 * (0.21 * xf + 0.17 * yf + 1.3 * cf).sin()
                    + 0.1 * (0.9 * xf - 0.7 * yf + 0.5 * cf + kf).sin()
                    + 0.05 * (2.1 * xf + 1.3 * yf + 0.01 * xf * yf - cf).sin();
                data.push(v as f32);
            }
        }
    }
    MetricImage::from_hwc(width, height, data).expect("finite values, positive size")
}

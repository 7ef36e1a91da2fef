//! 2-D convolution as one matrix product, for training on the CPU.
//!
//! burn 0.21's autodiff computes a convolution's weight gradient as another convolution, whose
//! "kernel" is the output gradient (as large as the feature map) and whose input channels are the
//! batch. On the `flex` CPU backend that convolution takes a direct path (a batch of at most 4,
//! at most 16 output channels) that runs far from the arithmetic rate: on the main job's tiny
//! U-Net it was half of each training step (BENCHMARKS.md, "Convolutions as one matrix
//! product"). [`conv2d`] writes the same convolution as patches × weights, so both gradients are
//! matrix products too. It is used only where it pays: with autodiff on the `flex` backend.
//! Everywhere else (inference, CUDA) it is burn's own `Conv2d::forward`.

use burn::nn::PaddingConfig2d;
use burn::nn::conv::Conv2d;
use burn::prelude::*;
use burn::tensor::s;

/// Whether [`conv2d`] unfolds on backend `B` at `device`: training (autodiff) on `flex`.
pub fn unfolds<B: Backend>(device: &B::Device) -> bool {
    B::ad_enabled(device) && B::name(device).ends_with("<flex>")
}

/// `conv.forward(x)`, computed as patches × weights where that is faster (see [`unfolds`]).
/// Grouped, dilated and `Same`-padded convolutions always take `conv.forward`.
///
/// # Shapes
/// `x`: `[batch, channels_in, height, width]`; returns `[batch, channels_out, height_out,
/// width_out]`, as `Conv2d::forward`.
pub fn conv2d<B: Backend>(conv: &Conv2d<B>, x: Tensor<B, 4>) -> Tensor<B, 4> {
    if unfolds::<B>(&x.device()) {
        conv2d_unfolded(conv, x)
    } else {
        conv.forward(x)
    }
}

/// `((top, bottom), (left, right))` of a valid or explicit padding; `None` for `Same`.
fn explicit_padding(padding: &PaddingConfig2d) -> Option<((usize, usize), (usize, usize))> {
    match *padding {
        PaddingConfig2d::Valid => Some(((0, 0), (0, 0))),
        PaddingConfig2d::Explicit(top, left, bottom, right) => Some(((top, bottom), (left, right))),
        PaddingConfig2d::Same => None,
    }
}

/// `conv.forward(x)` as patches × weights, whatever the backend (groups 1, dilation 1, valid or
/// explicit padding; anything else takes `conv.forward`).
///
/// The input is padded, its `kh·kw` shifted views are stacked along the channels, `[batch,
/// kh·kw·channels_in, positions]`, and the weights, reordered to `[channels_out,
/// kh·kw·channels_in]`, multiply them. With stride 1 the positions are the output rows at the
/// padded width, so each shifted view is one contiguous run; the extra columns are dropped.
///
/// # Shapes
/// As [`conv2d`].
pub fn conv2d_unfolded<B: Backend>(conv: &Conv2d<B>, x: Tensor<B, 4>) -> Tensor<B, 4> {
    let Some(((top, bottom), (left, right))) = explicit_padding(&conv.padding) else {
        return conv.forward(x);
    };
    if conv.groups != 1 || conv.dilation != [1, 1] {
        return conv.forward(x);
    }
    let [batch, channels, height, width] = x.dims();
    let [kh, kw] = conv.kernel_size;
    let [sh, sw] = conv.stride;
    let (padded_h, padded_w) = (height + top + bottom, width + left + right);
    let (out_h, out_w) = ((padded_h - kh) / sh + 1, (padded_w - kw) / sw + 1);
    let unit_stride = sh == 1 && sw == 1;
    // stride 1: every kernel position's patch is one contiguous run of the flattened padded
    // image (rows of `padded_w`, the last `kw − 1` columns of each row unused), which flex copies
    // at memory speed; one spare row keeps the last run inside the image
    let spare_row = usize::from(unit_stride && kw > 1);
    let x = if top + bottom + spare_row + left + right > 0 {
        // zeros of the input's float type (`Tensor::pad` would make them in the default type)
        let dims = [batch, channels, padded_h + spare_row, padded_w];
        let zeros = Tensor::zeros(dims, (&x.device(), x.dtype()));
        zeros.slice_assign(s![.., .., top..top + height, left..left + width], x)
    } else {
        x
    };
    let weight = conv.weight.val();
    let channels_out = weight.dims()[0];
    let (patches, run) = if unit_stride {
        let flat = x.reshape([batch, channels, (padded_h + spare_row) * padded_w]);
        let run = out_h * padded_w;
        let shifted = (0..kh * kw)
            .map(|k| {
                let start = (k / kw) * padded_w + k % kw;
                flat.clone().slice(s![.., .., start..start + run])
            })
            .collect();
        (Tensor::cat(shifted, 1), run)
    } else {
        let mut shifted = Vec::with_capacity(kh * kw);
        for ky in 0..kh {
            for kx in 0..kw {
                let rows = ky..ky + (out_h - 1) * sh + 1;
                let cols = kx..kx + (out_w - 1) * sw + 1;
                shifted.push(x.clone().slice(s![.., .., rows;sh as isize, cols;sw as isize]));
            }
        }
        let run = out_h * out_w;
        (Tensor::cat(shifted, 1).reshape([batch, kh * kw * channels, run]), run)
    };
    // [out, in, kh, kw] → [out, kh, kw, in]: the patches' order (kernel position, then channel)
    let weight = weight
        .permute([0, 2, 3, 1])
        .reshape([1, channels_out, kh * kw * channels])
        .expand([batch, channels_out, kh * kw * channels]);
    let out = weight.matmul(patches);
    let out = match &conv.bias {
        Some(bias) => out + bias.val().reshape([1, channels_out, 1]),
        None => out,
    };
    if unit_stride && run != out_h * out_w {
        // drop the unused columns, then copy into a contiguous tensor (a reshape that the strided
        // view cannot take): element-wise operations on strided views are slow on flex
        out.reshape([batch, channels_out, out_h, padded_w])
            .slice(s![.., .., .., 0..out_w])
            .reshape([batch * channels_out * out_h * out_w])
            .reshape([batch, channels_out, out_h, out_w])
    } else {
        out.reshape([batch, channels_out, out_h, out_w])
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::backend::{Autodiff, Flex};
    use burn::nn::conv::Conv2dConfig;
    use burn::tensor::Distribution;

    type A = Autodiff<Flex>;

    /// Output and both gradients of `conv` on `x`, burn's own way and unfolded.
    fn both_ways(config: Conv2dConfig, dims: [usize; 4]) {
        let device = Default::default();
        A::seed(&device, 7);
        let conv = config.init::<A>(&device);
        let x = Tensor::<A, 4>::random(dims, Distribution::Normal(0.0, 1.0), &device);
        // a loss whose gradient differs at every output element
        let out_dims = conv.forward(x.clone()).dims();
        let w = Tensor::<A, 4>::random(out_dims, Distribution::Normal(0.0, 1.0), &device);
        let run = |unfolded: bool| {
            let x = x.clone().detach().require_grad();
            let y = if unfolded {
                conv2d_unfolded(&conv, x.clone())
            } else {
                conv.forward(x.clone())
            };
            let loss = (y.clone() * w.clone()).sum();
            let grads = loss.backward();
            let gx = x.grad(&grads).unwrap().into_data().to_vec::<f32>().unwrap();
            let gw = conv.weight.grad(&grads).unwrap().into_data().to_vec::<f32>().unwrap();
            let gb = conv
                .bias
                .as_ref()
                .map(|b| b.grad(&grads).unwrap().into_data().to_vec::<f32>().unwrap());
            (y.into_data().to_vec::<f32>().unwrap(), gx, gw, gb)
        };
        let native = run(false);
        let unfolded = run(true);
        // f32 sums of at most a few hundred products in a different order: 1e-4 relative
        let close = |a: &[f32], b: &[f32], what: &str| {
            assert_eq!(a.len(), b.len(), "{what}");
            let scale = a.iter().fold(1.0f32, |m, v| m.max(v.abs()));
            for (i, (p, q)) in a.iter().zip(b).enumerate() {
                assert!((p - q).abs() <= 1e-4 * scale, "{what}[{i}]: {p} vs {q}");
            }
        };
        close(&native.0, &unfolded.0, "output");
        close(&native.1, &unfolded.1, "input gradient");
        close(&native.2, &unfolded.2, "weight gradient");
        if let (Some(a), Some(b)) = (&native.3, &unfolded.3) {
            close(a, b, "bias gradient");
        }
    }

    #[test]
    fn unfolded_3x3_matches_burn_forward_and_gradients() {
        let config = Conv2dConfig::new([5, 8], [3, 3]).with_padding(PaddingConfig2d::Explicit(1, 1, 1, 1));
        both_ways(config, [3, 5, 9, 7]);
    }

    #[test]
    fn unfolded_strided_matches_burn_forward_and_gradients() {
        // the U-Net's downsampler: 3×3, stride 2, padding 1, on odd and even sides
        let config = Conv2dConfig::new([4, 6], [3, 3])
            .with_stride([2, 2])
            .with_padding(PaddingConfig2d::Explicit(1, 1, 1, 1));
        both_ways(config.clone(), [2, 4, 8, 8]);
        both_ways(config, [2, 4, 9, 7]);
    }

    #[test]
    fn unfolded_1x1_and_unpadded_match_burn() {
        both_ways(Conv2dConfig::new([6, 3], [1, 1]), [2, 6, 5, 4]);
        both_ways(Conv2dConfig::new([3, 4], [2, 3]).with_bias(false), [1, 3, 6, 7]);
        // asymmetric padding
        let config = Conv2dConfig::new([2, 3], [3, 3]).with_padding(PaddingConfig2d::Explicit(0, 1, 2, 1));
        both_ways(config, [2, 2, 5, 6]);
    }

    #[test]
    fn unfolded_keeps_a_half_precision_input_in_its_type() {
        let device = Default::default();
        let conv = Conv2dConfig::new([3, 4], [3, 3])
            .with_padding(PaddingConfig2d::Explicit(1, 1, 1, 1))
            .init::<A>(&device);
        let dtype = burn::tensor::DType::BF16;
        let conv = Conv2d {
            weight: burn::module::Param::from_tensor(conv.weight.val().cast(dtype).detach()),
            bias: conv.bias.map(|b| burn::module::Param::from_tensor(b.val().cast(dtype).detach())),
            ..conv
        };
        let x = Tensor::<A, 4>::ones([1, 3, 5, 5], &device).cast(dtype);
        let y = conv2d_unfolded(&conv, x.clone());
        assert_eq!(y.dtype(), dtype);
        let expected = conv.forward(x).cast(burn::tensor::DType::F32).into_data();
        let got = y.cast(burn::tensor::DType::F32).into_data();
        got.assert_approx_eq::<f32>(&expected, burn::tensor::Tolerance::absolute(5e-2));
    }

    #[test]
    fn only_training_on_flex_unfolds() {
        let device = Default::default();
        assert!(unfolds::<A>(&device));
        assert!(!unfolds::<Flex>(&device), "inference keeps burn's convolution");
    }
}

//! Items used only by the code that `#[framer]` and `#[framer_forward]` generate. Not a public
//! API: names and signatures may change in any release.

pub use burn;
pub use burn::tensor::Tensor;
pub use burn::tensor::backend::Backend;
pub use core::clone::Clone;
pub use core::option::Option::{self, None, Some};
pub use framer_macros::{__framer_forward_expand, FramerDerive};
pub use std::vec::Vec;

pub use crate::taps::{
    FramerModel, OUTPUT_TAP, ReadoutKind, TapElements, TapField, TapInfo, TapRole, TapTensor, Taps,
    tap_name,
};

/// Records the student `field[.index]`.
#[inline]
pub fn record_student<B: Backend, T: TapTensor<B> + ?Sized>(
    taps: &mut Taps<B>,
    field: &'static str,
    index: Option<usize>,
    output: &T,
) {
    taps.push_student(tap_name(field, index), output.tap_tensor());
}

/// Records the teacher `name[.index]`.
#[inline]
pub fn record_teacher<B: Backend, T: TapTensor<B> + ?Sized>(
    taps: &mut Taps<B>,
    field: &'static str,
    index: Option<usize>,
    output: &T,
) {
    taps.set_teacher(tap_name(field, index), output.tap_tensor());
}

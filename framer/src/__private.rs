//! Items used only by the code that `#[framer]` and `#[framer_forward]` generate. Not a public
//! API: names and signatures may change in any release.

pub use burn;
pub use burn::tensor::Tensor;
pub use burn::tensor::backend::Backend;
pub use core::clone::Clone;
pub use core::iter::{IntoIterator, Iterator};
pub use core::option::Option::{self, None, Some};
pub use core::unreachable;
pub use framer_macros::{__framer_forward_expand, FramerDerive};
pub use std::vec::Vec;

pub use crate::framed::FramerForward;
pub use crate::taps::{
    FramerModel, LossDefault, OUTPUT_TAP, ReadoutKind, TapElements, TapField, TapInfo, TapRole, TapTensor, Taps,
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

/// Gives every recorded student of `model` its field's weight (`#[framer(student, weight = ..)]`).
#[inline]
pub fn weigh_students<B: Backend, M: FramerModel<B> + ?Sized>(_model: &M, taps: &mut Taps<B>) {
    taps.weigh_by_fields(M::TAP_FIELDS);
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

/// Records `forward`'s return value as the teacher named [`crate::OUTPUT_TAP`].
#[inline]
pub fn record_output<B: Backend, T: OutputTensor<B> + ?Sized>(taps: &mut Taps<B>, output: &T) {
    taps.set_teacher(OUTPUT_TAP.to_string(), output.output_tensor());
}

/// `forward`'s return value, when it is the teacher.
#[diagnostic::on_unimplemented(
    message = "the default teacher is `forward`'s return value, which must be a `Tensor<B, 4>`, found `{Self}`",
    label = "`forward` returns this",
    note = "mark the module whose output is the prediction with `#[framer(teacher)]` (with `tap = .N` for a tuple element)"
)]
pub trait OutputTensor<B: Backend> {
    /// The prediction `[batch, channels, height, width]`.
    fn output_tensor(&self) -> Tensor<B, 4>;
}

impl<B: Backend> OutputTensor<B> for Tensor<B, 4> {
    fn output_tensor(&self) -> Tensor<B, 4> {
        self.clone()
    }
}

//! What the loss reads at one step, and the checks on it.

use std::ops::Range;

use burn::tensor::{Tensor, backend::Backend};

use crate::{FramerError, Parameterization, negatives::validate_negatives};

/// Everything the loss reads at one denoising step.
///
/// # Shapes
/// - `students`: `S ≥ 2` tensors `[batch, channels, height, width]`, raw predictions of the
///   intermediate layers in the teacher's space (after the readout)
/// - `teacher`: `[batch, channels, height, width]`, the final prediction (detached by the loss)
/// - `x_t`: `[batch, channels, height, width]`, the noisy input
/// - `parameterization`: per-sample levels `[batch]` (see [`Parameterization`])
/// - `negatives`: `S` indices, `negatives[i] ≠ i` (see [`crate::NegativeSampler`])
/// - `low_mask`: optional `[batch, channels, height, width]` low-band mask in the plain FFT layout,
///   replacing the mask the loss would compute (e.g. the reference's own masks)
/// - `student_weights`: optional `S` weights `w_i ≥ 0` of the students in the loss
///   (`Σ_i w_i·layer_i / S`); absent: every weight is 1, the unweighted mean
/// - `query_rows`: optional range of the batch whose samples are the queries: the loss averages
///   over them only, while every sample's teacher and random-layer high bands are InterCL keys
///   (a data-parallel peer's rows in the gathered global batch, see [`crate::BatchGather`]);
///   absent: every sample
#[derive(Debug, Clone)]
pub struct FramerInput<B: Backend> {
    /// Raw predictions of the student layers.
    pub students: Vec<Tensor<B, 4>>,
    /// Raw prediction of the final layer.
    pub teacher: Tensor<B, 4>,
    /// The noisy sample the predictions were made from.
    pub x_t: Tensor<B, 4>,
    /// How predictions become clean estimates.
    pub parameterization: Parameterization<B>,
    /// The random-layer negative of each student.
    pub negatives: Vec<usize>,
    /// An injected low-band mask, if any.
    pub low_mask: Option<Tensor<B, 4>>,
    /// The weight of each student in the loss (`#[framer(student, weight = ..)]`, or the
    /// schedule's `student_weights`); `None`: all 1.
    pub student_weights: Option<Vec<f64>>,
    /// The samples that are queries (the reference's InterCL labels `rank·B + b`); `None`: all.
    pub query_rows: Option<Range<usize>>,
}

impl<B: Backend> FramerInput<B> {
    /// An input with the mask computed by the loss.
    pub fn new(
        students: Vec<Tensor<B, 4>>,
        teacher: Tensor<B, 4>,
        x_t: Tensor<B, 4>,
        parameterization: Parameterization<B>,
        negatives: Vec<usize>,
    ) -> Self {
        Self { students, teacher, x_t, parameterization, negatives, low_mask: None, student_weights: None, query_rows: None }
    }

    /// Injects a low-band mask `[batch, channels, height, width]` (plain FFT layout).
    pub fn with_low_mask(mut self, low_mask: Tensor<B, 4>) -> Self {
        self.low_mask = Some(low_mask);
        self
    }

    /// Weighs the students: the loss becomes `Σ_i w_i·layer_i / S` (`S` weights, finite and
    /// `≥ 0`, checked by the loss). All-one weights give exactly the unweighted loss.
    #[doc(alias = "student_weight")]
    pub fn with_student_weights(mut self, weights: Vec<f64>) -> Self {
        self.student_weights = Some(weights);
        self
    }

    /// Makes only the samples `rows` queries: the loss is the mean over them, and the other
    /// samples serve as InterCL keys only (their gradients are zero). A data-parallel peer passes
    /// its own rows of the gathered batch (see [`crate::BatchGather`]); the losses of all peers
    /// then average to the loss of the whole batch, and so do their gradients.
    #[doc(alias = "process_rank")]
    pub fn with_query_rows(mut self, rows: Range<usize>) -> Self {
        self.query_rows = Some(rows);
        self
    }

    /// The query rows, all of `batch` when none were set.
    pub(super) fn queries(&self, batch: usize) -> Range<usize> {
        self.query_rows.clone().unwrap_or(0..batch)
    }

    /// The student weights, when any differs from 1 (`None`: the plain mean over students).
    pub(super) fn effective_weights(&self) -> Option<&[f64]> {
        self.student_weights.as_deref().filter(|w| w.iter().any(|&x| x != 1.0))
    }

    /// Checks the shapes and the negatives; returns `[batch, channels, height, width]`.
    pub(super) fn validate(&self) -> Result<[usize; 4], FramerError> {
        let shape = self.teacher.dims();
        if shape[0] == 0 {
            return Err(FramerError::EmptyBatch("teacher"));
        }
        if self.students.len() < 2 {
            return Err(FramerError::TooFewStudents(self.students.len()));
        }
        let mismatch = |name: String, got: [usize; 4]| FramerError::ShapeMismatch {
            name,
            expected: shape.to_vec(),
            got: got.to_vec(),
        };
        for (i, s) in self.students.iter().enumerate() {
            if s.dims() != shape {
                return Err(mismatch(format!("students[{i}]"), s.dims()));
            }
        }
        if self.x_t.dims() != shape {
            return Err(mismatch("x_t".into(), self.x_t.dims()));
        }
        if let Some(m) = &self.low_mask
            && m.dims() != shape
        {
            return Err(mismatch("low_mask".into(), m.dims()));
        }
        validate_negatives(&self.negatives, self.students.len())?;
        if let Some(rows) = &self.query_rows
            && (rows.is_empty() || rows.end > shape[0])
        {
            return Err(FramerError::InvalidQueryRows(format!(
                "{rows:?} is not a non-empty range of the batch's {} samples",
                shape[0]
            )));
        }
        if let Some(weights) = &self.student_weights {
            if weights.len() != self.students.len() {
                return Err(FramerError::InvalidStudentWeights(format!(
                    "{} weights for {} students",
                    weights.len(),
                    self.students.len()
                )));
            }
            if let Some((i, w)) = weights.iter().enumerate().find(|(_, w)| !(w.is_finite() && **w >= 0.0)) {
                return Err(FramerError::InvalidStudentWeights(format!(
                    "the weight of students[{i}] is {w}; weights are finite and ≥ 0"
                )));
            }
        }
        Ok(shape)
    }
}

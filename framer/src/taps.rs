//! Taps: the intermediate outputs of a model that FRAMER distils, and the runtime behind the
//! [`framer`](crate::framer) and [`framer_forward`](crate::framer_forward) attribute macros.
//!
//! A model annotated with `#[framer]` gets an implementation of [`FramerModel`] (which fields are
//! taps, their burn module paths and roles), and its `impl` block annotated with
//! `#[framer_forward]` gets a method `forward_with_taps(..) -> (output, Taps<B>)` that runs the
//! model's own `forward` code while recording every student's output.
//!
//! The flow of one training step:
//!
//! ```text
//! let (prediction, taps) = model.forward_with_taps(x_t, timestep);   // taps: students + teacher
//! let taps = heads.forward(taps)?;          // only for `heads = conv1x1`: hidden → teacher space
//! let out = taps.loss(&framer_loss, x_t, parameterization, negatives)?;
//! let total = denoise_loss + weight * out.loss;
//! ```
//!
//! Tap names are burn module paths: the field name, followed by `.{index}` for an element of a
//! `Vec`/array field (`transformer_blocks.7`, `down_blocks.1`, `mid_block`), the same strings as
//! burn's parameter paths. The default teacher, the model's own return value, is named
//! [`OUTPUT_TAP`].

use burn::module::Module;
use burn::nn::conv::{Conv2d, Conv2dConfig};
use burn::tensor::{FloatDType, Tensor};
use burn::tensor::backend::Backend;
use burn::tensor::module::interpolate;
use burn::tensor::ops::{InterpolateMode, InterpolateOptions};
use thiserror::Error;

use crate::{FramerError, FramerInput, FramerLoss, FramerOutput, Parameterization};

/// Name of the teacher tap when the teacher is the model's own prediction (the default).
pub const OUTPUT_TAP: &str = "output";

/// What a tap is to the FRAMER loss.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TapRole {
    /// An intermediate layer whose output is aligned to the teacher (`#[framer(student)]`).
    Student,
    /// The layer (by default the model's final prediction) that teaches the students
    /// (`#[framer(teacher)]`, or the return value of `forward`).
    Teacher,
}

/// How student outputs are mapped into the teacher's space (`[batch, channels, height, width]` of
/// the prediction), chosen by the container attribute of `#[framer]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReadoutKind {
    /// No readout: each student's (selected) output is already a prediction-shaped tensor.
    Identity,
    /// `#[framer(readout = method(..))]`: the named method of the model is called on every
    /// student's hidden state inside `forward_with_taps` (the DiT early exit).
    Method(&'static str),
    /// `#[framer(heads = conv1x1)]`: generated trainable heads ([`FramerHeads`]), one 1×1
    /// convolution to the prediction's channels plus a bilinear resize to its resolution per
    /// student, kept outside the model and applied with [`FramerHeads::forward`].
    Heads,
}

/// Which elements of a `Vec`/array field are taps.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TapElements {
    /// The field is a single module (one tap, named after the field).
    Single,
    /// Every element of a `Vec`/array field (`#[framer(student)]`).
    All,
    /// The listed elements of a `Vec`/array field (`#[framer(student, indices = [..])]`).
    Indices(&'static [usize]),
}

/// Static description of one annotated field, as written in the attributes.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct TapField {
    /// The field's name (the first segment of the burn module path).
    pub field: &'static str,
    /// Student or teacher.
    pub role: TapRole,
    /// Which elements are tapped.
    pub elements: TapElements,
    /// For tuple outputs, the recorded element (`tap = .0` gives `Some(0)`).
    pub element: Option<usize>,
    /// The weight of each of the field's students in the loss (`#[framer(student, weight = 0.5)]`;
    /// 1 when not written, and for the teacher).
    pub weight: f64,
}

impl TapField {
    /// The field of `fields` that the tap `name` (`field` or `field.index`) belongs to.
    pub fn of<'a>(fields: &'a [TapField], name: &str) -> Option<&'a TapField> {
        fields.iter().find(|f| {
            name.strip_prefix(f.field)
                .is_some_and(|rest| rest.is_empty() || rest.starts_with('.'))
        })
    }
}

/// One tap of a concrete model instance: its burn module path and role.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct TapInfo {
    /// Burn module path, e.g. `transformer_blocks.7`, `mid_block`, or [`OUTPUT_TAP`].
    pub name: String,
    /// Student or teacher.
    pub role: TapRole,
}

impl TapInfo {
    /// A tap named `field` (a single module), or `field.index` for an element of a collection.
    pub fn new(field: &str, index: Option<usize>, role: TapRole) -> Self {
        Self {
            name: tap_name(field, index),
            role,
        }
    }
}

/// The burn module path of a field or of one element of a `Vec`/array field.
pub fn tap_name(field: &str, index: Option<usize>) -> String {
    match index {
        Some(i) => format!("{field}.{i}"),
        None => field.to_string(),
    }
}

/// Implemented by `#[framer]` for the annotated model: which of its layers are taps.
///
/// The tapped forward itself, `forward_with_taps`, is an inherent method generated by
/// `#[framer_forward]` on the `impl` block that holds `forward`, with the same arguments as
/// `forward` and the return type `(R, Taps<B>)` where `R` is `forward`'s return type.
pub trait FramerModel<B: Backend> {
    /// How students are mapped into the teacher's space.
    const READOUT: ReadoutKind;
    /// The annotated fields, in declaration order.
    const TAP_FIELDS: &'static [TapField];
    /// The FRAMER loss defaults declared on the struct with `#[framer(loss(..))]`, by the
    /// schedule's key names; a schedule's `[framer]` table overrides them.
    const LOSS_DEFAULTS: &'static [LossDefault] = &[];

    /// Every tap of this instance in declaration order (collections expanded with their current
    /// length), followed by the teacher.
    fn taps(&self) -> Vec<TapInfo>;

    /// The names of the student taps of this instance (burn module paths), in declaration order.
    fn student_names(&self) -> Vec<String> {
        self.taps()
            .into_iter()
            .filter(|t| t.role == TapRole::Student)
            .map(|t| t.name)
            .collect()
    }

    /// The weight of each student tap of this instance in the loss, in the order of
    /// [`Self::student_names`]: its field's `#[framer(student, weight = ..)]`, 1 when not written.
    #[doc(alias = "student_weight")]
    fn student_weights(&self) -> Vec<f64> {
        self.student_names()
            .iter()
            .map(|n| TapField::of(Self::TAP_FIELDS, n).map_or(1.0, |f| f.weight))
            .collect()
    }

    /// Number of student taps of this instance.
    fn num_students(&self) -> usize {
        self.taps()
            .iter()
            .filter(|t| t.role == TapRole::Student)
            .count()
    }

    /// For `heads = conv1x1`, builds fresh heads from one sample run of `forward_with_taps`
    /// (which gives the students' channels and the teacher's shape); `None` for other readouts.
    fn init_heads(
        &self,
        sample: &Taps<B>,
        device: &B::Device,
    ) -> Result<Option<FramerHeads<B>>, TapsError> {
        match Self::READOUT {
            ReadoutKind::Heads => FramerHeads::from_taps(sample, device).map(Some),
            _ => Ok(None),
        }
    }
}

/// A FRAMER loss default declared on a model: `#[framer(loss(cutoff = 0.2, tau = 1.0))]`, by the
/// schedule's `[framer]` key names (`lambda`, `cutoff`, `radius`, `temperature`,
/// `adaptive_weight`, `alignment_modulation`).
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum LossDefault {
    /// A number: `lambda`, `cutoff`, `radius`, `temperature`.
    Number(&'static str, f64),
    /// A switch: `adaptive_weight` (FAW), `alignment_modulation` (FAM).
    Flag(&'static str, bool),
}

impl LossDefault {
    /// The schedule key it sets.
    pub fn key(&self) -> &'static str {
        match self {
            Self::Number(k, _) | Self::Flag(k, _) => k,
        }
    }
}

/// Errors of the tap runtime: taps that cannot feed the loss as they are.
#[derive(Debug, Clone, PartialEq, Error)]
#[non_exhaustive]
pub enum TapsError {
    /// No teacher was recorded (the teacher field was not reached by `forward`).
    #[error("no teacher was recorded: `forward` never reached the `#[framer(teacher)]` field")]
    MissingTeacher,
    /// The students are raw hidden states and need the generated heads first.
    #[error(
        "the students are hidden states of the model, not predictions: pass the taps through \
         `FramerHeads::forward` (the model uses `#[framer(heads = conv1x1)]`)"
    )]
    NotInTeacherSpace,
    /// The heads were applied to taps that are already in the teacher's space.
    #[error("the taps are already in the teacher's space; the heads apply only once")]
    AlreadyInTeacherSpace,
    /// The heads and the taps disagree on the number of students.
    #[error("the heads were built for {heads} students, but {students} were recorded")]
    HeadCount {
        /// Number of heads.
        heads: usize,
        /// Number of recorded students.
        students: usize,
    },
    /// A head received a student with an unexpected number of channels.
    #[error("student `{name}` has {got} channels, but its head expects {expected}")]
    HeadChannels {
        /// Tap name of the student.
        name: String,
        /// Input channels of the head.
        expected: usize,
        /// Channels of the recorded student.
        got: usize,
    },
    /// A selected student name is not among the recorded taps.
    #[error("no student `{name}` was recorded; the students are: {known}")]
    UnknownStudent {
        /// The requested name.
        name: String,
        /// The recorded student names, comma-separated.
        known: String,
    },
    /// A student recorded without readout is not shaped like the teacher.
    #[error(
        "student `{name}` has shape {got:?}, the teacher {expected:?}: students without a readout \
         must already be predictions; map hidden states with `#[framer(heads = conv1x1)]` \
         (generated 1×1-conv heads) or `#[framer(readout = method(..))]` (a head of the model)"
    )]
    StudentShape {
        /// Tap name of the student.
        name: String,
        /// The student's shape.
        got: [usize; 4],
        /// The teacher's shape.
        expected: [usize; 4],
    },
    /// The FRAMER loss rejected its input.
    #[error(transparent)]
    Loss(#[from] FramerError),
}

/// One recorded tap.
#[derive(Debug, Clone)]
pub struct TapRecord<B: Backend> {
    /// Burn module path of the tapped layer.
    pub name: String,
    /// Student or teacher.
    pub role: TapRole,
    /// The recorded output `[batch, channels, height, width]`.
    pub tensor: Tensor<B, 4>,
    /// A student's weight in the loss (1 unless the attribute or the schedule says otherwise);
    /// 1 for the teacher.
    pub weight: f64,
}

/// The outputs recorded by one `forward_with_taps` run: the students in the order `forward`
/// reached them, and the teacher.
///
/// Student tensors are `[batch, channels, height, width]`: in the teacher's space (the
/// prediction's shape) for models without readout or with `readout = method`, and raw hidden
/// states for `heads = conv1x1` until [`FramerHeads::forward`] maps them.
#[derive(Debug, Clone)]
pub struct Taps<B: Backend> {
    students: Vec<TapRecord<B>>,
    teacher: Option<TapRecord<B>>,
    in_teacher_space: bool,
}

impl<B: Backend> Default for Taps<B> {
    fn default() -> Self {
        Self::new(true)
    }
}

impl<B: Backend> Taps<B> {
    /// An empty collector; `in_teacher_space` is `false` when students are hidden states that the
    /// generated heads still have to map.
    pub fn new(in_teacher_space: bool) -> Self {
        Self {
            students: Vec::new(),
            teacher: None,
            in_teacher_space,
        }
    }

    /// Records a student (used by the generated code; also usable by hand).
    pub fn push_student(&mut self, name: String, tensor: Tensor<B, 4>) {
        self.students.push(TapRecord {
            name,
            role: TapRole::Student,
            tensor,
            weight: 1.0,
        });
    }

    /// Records the teacher; a later call replaces an earlier one.
    pub fn set_teacher(&mut self, name: String, tensor: Tensor<B, 4>) {
        self.teacher = Some(TapRecord {
            name,
            role: TapRole::Teacher,
            tensor,
            weight: 1.0,
        });
    }

    /// Number of recorded taps, students and teacher.
    pub fn len(&self) -> usize {
        self.students.len() + usize::from(self.teacher.is_some())
    }

    /// Whether nothing was recorded.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Number of recorded students.
    pub fn num_students(&self) -> usize {
        self.students.len()
    }

    /// The tap names (burn module paths): the students in recording order, then the teacher.
    pub fn names(&self) -> Vec<&str> {
        self.iter().map(|r| r.name.as_str()).collect()
    }

    /// The student names in recording order.
    pub fn student_names(&self) -> Vec<&str> {
        self.students.iter().map(|r| r.name.as_str()).collect()
    }

    /// The student tensors `[batch, channels, height, width]` in recording order.
    pub fn students(&self) -> Vec<Tensor<B, 4>> {
        self.students.iter().map(|r| r.tensor.clone()).collect()
    }

    /// The students' weights in the loss, in recording order.
    pub fn student_weights(&self) -> Vec<f64> {
        self.students.iter().map(|r| r.weight).collect()
    }

    /// Sets the weight in the loss of the recorded student `name`.
    ///
    /// # Errors
    /// [`TapsError::UnknownStudent`] for a name that was not recorded.
    pub fn set_student_weight(&mut self, name: &str, weight: f64) -> Result<(), TapsError> {
        match self.students.iter_mut().find(|r| r.name == name) {
            Some(r) => {
                r.weight = weight;
                Ok(())
            }
            None => Err(TapsError::UnknownStudent {
                name: name.to_string(),
                known: self.student_names().join(", "),
            }),
        }
    }

    /// Gives every student the weight of its field in `fields` (1 for a field not listed).
    pub(crate) fn weigh_by_fields(&mut self, fields: &[TapField]) {
        for r in &mut self.students {
            r.weight = TapField::of(fields, &r.name).map_or(1.0, |f| f.weight);
        }
    }

    /// The student records in recording order.
    pub fn student_records(&self) -> &[TapRecord<B>] {
        &self.students
    }

    /// The teacher `[batch, channels, height, width]`, if recorded.
    pub fn teacher(&self) -> Option<&Tensor<B, 4>> {
        self.teacher.as_ref().map(|r| &r.tensor)
    }

    /// The teacher's record, if recorded.
    pub fn teacher_record(&self) -> Option<&TapRecord<B>> {
        self.teacher.as_ref()
    }

    /// The first tap with this name.
    pub fn get(&self, name: &str) -> Option<&Tensor<B, 4>> {
        self.iter().find(|r| r.name == name).map(|r| &r.tensor)
    }

    /// All records: the students in recording order, then the teacher.
    pub fn iter(&self) -> impl Iterator<Item = &TapRecord<B>> {
        self.students.iter().chain(self.teacher.iter())
    }

    /// Keeps only the students named in `names` (in recording order, each with its weight; the
    /// teacher stays).
    ///
    /// # Errors
    /// [`TapsError::UnknownStudent`] for a name that was not recorded.
    pub fn retain_students(mut self, names: &[String]) -> Result<Self, TapsError> {
        if let Some(missing) = names.iter().find(|n| !self.students.iter().any(|r| &r.name == *n)) {
            return Err(TapsError::UnknownStudent {
                name: missing.clone(),
                known: self.student_names().join(", "),
            });
        }
        self.students.retain(|r| names.contains(&r.name));
        Ok(self)
    }

    /// Whether the students are in the teacher's space (false only before the generated heads).
    pub fn in_teacher_space(&self) -> bool {
        self.in_teacher_space
    }

    /// Builds the loss input from the recorded students (with their weights) and teacher.
    ///
    /// # Arguments
    /// - `x_t`: the noisy input `[batch, channels, height, width]` the prediction was made from
    /// - `parameterization`: how predictions become clean estimates
    /// - `negatives`: the random-layer negative of each student (see [`crate::NegativeSampler`])
    ///
    /// The teacher and the students are cast to `x_t`'s float type, so a model run in half
    /// precision with an f32 `x_t` gets an f32 loss.
    pub fn framer_input(
        self,
        x_t: Tensor<B, 4>,
        parameterization: Parameterization<B>,
        negatives: Vec<usize>,
    ) -> Result<FramerInput<B>, TapsError> {
        if !self.in_teacher_space {
            return Err(TapsError::NotInTeacherSpace);
        }
        let teacher = self.teacher.ok_or(TapsError::MissingTeacher)?.tensor;
        let expected = teacher.dims();
        if let Some(bad) = self.students.iter().find(|r| r.tensor.dims() != expected) {
            return Err(TapsError::StudentShape {
                name: bad.name.clone(),
                got: bad.tensor.dims(),
                expected,
            });
        }
        let weights = self.students.iter().map(|r| r.weight).collect();
        // the loss runs in x_t's float type: a model run in half precision hands its predictions
        // back to an f32 loss (a no-op when the types agree)
        let dtype = FloatDType::from(x_t.dtype());
        let teacher = teacher.cast(dtype);
        let students = self.students.into_iter().map(|r| r.tensor.cast(dtype)).collect();
        Ok(FramerInput::new(students, teacher, x_t, parameterization, negatives).with_student_weights(weights))
    }

    /// Evaluates `loss` on these taps (see [`Taps::framer_input`] for the arguments).
    pub fn loss(
        self,
        loss: &FramerLoss,
        x_t: Tensor<B, 4>,
        parameterization: Parameterization<B>,
        negatives: Vec<usize>,
    ) -> Result<FramerOutput<B>, TapsError> {
        Ok(loss.forward(self.framer_input(x_t, parameterization, negatives)?)?)
    }
}

/// Generated readout heads (`#[framer(heads = conv1x1)]`): per student a trainable 1×1
/// convolution to the prediction's channels, then a bilinear resize to its resolution.
///
/// The heads live outside the model (train them in the same optimiser as the model, drop them at
/// inference). Head `i` maps the `i`-th recorded student.
#[derive(Module, Debug)]
pub struct FramerHeads<B: Backend> {
    /// One 1×1 convolution per student, `student channels → prediction channels`.
    pub convs: Vec<Conv2d<B>>,
}

impl<B: Backend> FramerHeads<B> {
    /// Heads for students with the given channel counts, mapping to `out_channels`.
    pub fn init(student_channels: &[usize], out_channels: usize, device: &B::Device) -> Self {
        let convs = student_channels
            .iter()
            .map(|&c| Conv2dConfig::new([c, out_channels], [1, 1]).init(device))
            .collect();
        Self { convs }
    }

    /// Heads sized from a sample run: the students' channels and the teacher's channels.
    pub fn from_taps(sample: &Taps<B>, device: &B::Device) -> Result<Self, TapsError> {
        let teacher = sample.teacher().ok_or(TapsError::MissingTeacher)?;
        let out_channels = teacher.dims()[1];
        let channels: Vec<usize> = sample.students.iter().map(|r| r.tensor.dims()[1]).collect();
        Ok(Self::init(&channels, out_channels, device))
    }

    /// Number of heads.
    pub fn len(&self) -> usize {
        self.convs.len()
    }

    /// Whether there are no heads.
    pub fn is_empty(&self) -> bool {
        self.convs.is_empty()
    }

    /// Maps every student `[batch, c_i, h_i, w_i]` to the teacher's `[batch, C, H, W]`.
    pub fn forward(&self, taps: Taps<B>) -> Result<Taps<B>, TapsError> {
        if taps.in_teacher_space {
            return Err(TapsError::AlreadyInTeacherSpace);
        }
        if taps.students.len() != self.convs.len() {
            return Err(TapsError::HeadCount {
                heads: self.convs.len(),
                students: taps.students.len(),
            });
        }
        let [_, _, height, width] = taps.teacher().ok_or(TapsError::MissingTeacher)?.dims();
        let mut students = Vec::with_capacity(taps.students.len());
        for (record, conv) in taps.students.into_iter().zip(&self.convs) {
            let expected = conv.weight.dims()[1];
            let [_, got, h, w] = record.tensor.dims();
            if got != expected {
                return Err(TapsError::HeadChannels {
                    name: record.name,
                    expected,
                    got,
                });
            }
            let mut tensor = crate::conv::conv2d(conv, record.tensor);
            if [h, w] != [height, width] {
                let options =
                    InterpolateOptions::new(InterpolateMode::Bilinear).with_align_corners(false);
                tensor = interpolate(tensor, [height, width], options);
            }
            students.push(TapRecord { tensor, ..record });
        }
        Ok(Taps {
            students,
            teacher: taps.teacher,
            in_teacher_space: true,
        })
    }
}

/// The tensor a tap records. Implemented for `Tensor<B, 4>`; select a tuple element with
/// `tap = .N` or map hidden states with `readout = ..` otherwise.
#[diagnostic::on_unimplemented(
    message = "a framer tap must be a `Tensor<B, 4>`, found `{Self}`",
    label = "this output is recorded as a tap",
    note = "select a tuple element with `#[framer(student, tap = .0)]`, or map hidden states to the \
            prediction with `#[framer(readout = method(..))]`"
)]
pub trait TapTensor<B: Backend> {
    /// The recorded tensor `[batch, channels, height, width]`.
    fn tap_tensor(&self) -> Tensor<B, 4>;
}

impl<B: Backend> TapTensor<B> for Tensor<B, 4> {
    fn tap_tensor(&self) -> Tensor<B, 4> {
        self.clone()
    }
}

#[cfg(test)]
mod tests;

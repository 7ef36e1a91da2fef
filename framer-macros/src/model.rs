//! The typed model between parsing and code generation: what `#[framer]` says about a struct.

use proc_macro2::Span;
use syn::{Generics, Ident};

/// A validated `#[framer]` struct.
pub(crate) struct Model {
    /// The struct's name.
    pub ident: Ident,
    /// The struct's generics (including where-clauses).
    pub generics: Generics,
    /// Position of burn's backend parameter `B` among the struct's generic parameters.
    pub backend_index: usize,
    /// How students are mapped to the teacher's space.
    pub readout: Readout,
    /// The FRAMER loss defaults declared with `loss(..)`.
    pub loss: Vec<crate::attr::LossDefault>,
    /// The annotated fields, in declaration order.
    pub fields: Vec<TapFieldSpec>,
}

/// The container's readout.
pub(crate) enum Readout {
    /// Students are recorded as they are.
    Identity,
    /// `readout = method(args..)`.
    Method { method: Ident, args: Vec<Ident> },
    /// `heads = conv1x1`.
    Heads,
}

/// Student or teacher.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) enum Role {
    Student,
    Teacher,
}

/// The shape of an annotated field.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) enum FieldKind {
    /// One module.
    Single,
    /// A `Vec` (`len: None`) or an array `[M; N]` (`len: Some(N)`) of modules.
    Collection { len: Option<usize> },
}

/// One annotated field.
pub(crate) struct TapFieldSpec {
    /// The field's name.
    pub ident: Ident,
    /// Student or teacher.
    pub role: Role,
    /// Span of the role key, for errors about the role.
    pub role_span: Span,
    /// Single module or collection.
    pub kind: FieldKind,
    /// `indices = [..]`, if given.
    pub indices: Option<Vec<usize>>,
    /// `tap = .N`, if given.
    pub element: Option<syn::Index>,
    /// `weight = x` (1 when not given): the weight of each of the field's students in the loss.
    pub weight: f64,
}

impl Model {
    /// Whether `forward`'s return value is the teacher.
    pub(crate) fn teacher_is_output(&self) -> bool {
        !self.fields.iter().any(|f| f.role == Role::Teacher)
    }
}

//! Validation: the read attributes ([`crate::ast::Input`]) against each other and the fields'
//! types → [`Model`], every error accumulated.

use proc_macro2::Span;
use quote::ToTokens;
use syn::{DeriveInput, GenericParam, Ident, Type};

use crate::ast::{Field, Input};
use crate::ctxt::Ctxt;
use crate::model::{FieldKind, Model, Role, TapFieldSpec};

/// Reads and validates the struct. Errors go to `cx`; `None` when the model is unusable.
pub(crate) fn model(input: &DeriveInput, cx: &mut Ctxt) -> Option<Model> {
    Input::from_syn(input, cx)?.validate(cx)
}

impl Input<'_> {
    /// The model, after checking the keys of each field and across fields.
    pub(crate) fn validate(self, cx: &mut Ctxt) -> Option<Model> {
        let backend_index = backend_index(self.original, cx);
        let mut specs = Vec::new();
        for mut field in self.fields {
            for error in field.errors.drain(..) {
                cx.push(error);
            }
            if let Some(spec) = field_spec(field, cx) {
                specs.push(spec);
            }
        }
        cross_field(self.original, &specs, cx);
        Some(Model {
            ident: self.ident.clone(),
            generics: self.generics.clone(),
            backend_index: backend_index?,
            readout: self.readout?,
            loss: self.loss,
            fields: specs,
        })
    }
}

fn backend_index(input: &DeriveInput, cx: &mut Ctxt) -> Option<usize> {
    let found = input
        .generics
        .params
        .iter()
        .position(|p| matches!(p, GenericParam::Type(t) if t.ident == "B"));
    if found.is_none() {
        cx.error_spanned_by(
            &input.ident,
            "`#[framer]` needs burn's backend type parameter `B`, as `#[derive(Module)]` does: \
             `struct Model<B: Backend> { .. }`",
        );
    }
    found
}

/// Checks one field's keys against each other and the field's type. `None` for fields without
/// a role (and for broken ones, after reporting).
fn field_spec(field: Field<'_>, cx: &mut Ctxt) -> Option<TapFieldSpec> {
    let Field {
        ident, ty, keys, ..
    } = field;
    let ident = ident.clone();
    let (role, role_span) = match (keys.student, keys.teacher) {
        (Some(s), None) => (Role::Student, s),
        (None, Some(t)) => (Role::Teacher, t),
        (Some(_), Some(t)) => {
            cx.error_at(
                t,
                "a field is either a `student` or the `teacher`, not both",
            );
            return None;
        }
        (None, None) => {
            if let Some((span, _)) = &keys.indices {
                cx.error_at(*span, "`indices` selects students: add `student`, as in `#[framer(student, indices = [..])]`");
            }
            if let Some((span, _)) = &keys.tap {
                cx.error_at(*span, "`tap` needs a role: `#[framer(student, tap = .0)]` or `#[framer(teacher, tap = .0)]`");
            }
            if let Some((span, _)) = &keys.weight {
                cx.error_at(*span, "`weight` weighs a student in the loss: add `student`, as in `#[framer(student, weight = 0.5)]`");
            }
            return None;
        }
    };
    let role_name = if role == Role::Student {
        "student"
    } else {
        "teacher"
    };

    if role == Role::Teacher
        && let Some((span, _)) = &keys.weight
    {
        cx.error_at(
            *span,
            "`weight` applies to students; the teacher is not weighed (it teaches every student)",
        );
        return None;
    }
    let kind = field_kind(ty);
    let element_ty = match (&kind, &ty) {
        (FieldKind::Collection { .. }, ty) => collection_element(ty).unwrap_or(ty),
        (FieldKind::Single, ty) => ty,
    };
    if let Some(found) = non_module(element_ty) {
        let what = match (role, kind) {
            (Role::Teacher, _) => "a module".to_string(),
            (Role::Student, _) => "a module, a `Vec` of modules or an array of modules".to_string(),
        };
        let found = match kind {
            FieldKind::Collection { len: None } => format!("a `Vec` of {found}"),
            FieldKind::Collection { len: Some(_) } => format!("an array of {found}"),
            FieldKind::Single => found,
        };
        cx.error_spanned_by(
            ty,
            format!("`#[framer({role_name})]` needs {what}, found {found}"),
        );
        return None;
    }

    if role == Role::Teacher
        && let FieldKind::Collection { .. } = kind
    {
        cx.error_at(
            role_span,
            "the teacher is one module, not a collection; to use `forward`'s return value, leave \
             `teacher` out",
        );
        return None;
    }

    let indices = match keys.indices {
        None => None,
        Some((span, list)) => {
            let ok = check_indices(&ident, role, kind, span, &list, cx);
            ok.then(|| list.into_iter().map(|(i, _)| i).collect())
        }
    };
    Some(TapFieldSpec {
        ident,
        role,
        role_span,
        kind,
        indices,
        element: keys.tap.map(|(_, index)| index),
        weight: keys.weight.map_or(1.0, |(_, w)| w),
    })
}

fn check_indices(
    ident: &Ident,
    role: Role,
    kind: FieldKind,
    span: Span,
    list: &[(usize, Span)],
    cx: &mut Ctxt,
) -> bool {
    let mut bad = false;
    if role == Role::Teacher {
        cx.error_at(
            span,
            "`indices` selects students; the teacher is one module",
        );
        return false;
    }
    match kind {
        FieldKind::Single => {
            cx.error_at(
                span,
                format!("`indices` applies to a `Vec` or array of modules, and `{ident}` is a single module"),
            );
            return false;
        }
        FieldKind::Collection { len } => {
            if list.is_empty() {
                cx.error_at(
                    span,
                    "`indices` is empty: list at least one element, or drop `indices` to tap all",
                );
                bad = true;
            }
            for (n, (i, s)) in list.iter().enumerate() {
                if list[..n].iter().any(|(j, _)| j == i) {
                    cx.error_at(*s, format!("index {i} is listed twice"));
                    bad = true;
                }
                if let Some(len) = len
                    && *i >= len
                {
                    cx.error_at(
                        *s,
                        format!(
                            "index {i} is out of range for `{ident}`, which has {len} elements"
                        ),
                    );
                    bad = true;
                }
            }
        }
    }
    !bad
}

/// `Vec<T>` / `[T; N]` → a collection; anything else → a single module.
pub(crate) fn field_kind(ty: &Type) -> FieldKind {
    match ty {
        Type::Array(array) => {
            let len = match &array.len {
                syn::Expr::Lit(syn::ExprLit {
                    lit: syn::Lit::Int(n),
                    ..
                }) => n.base10_parse().ok(),
                _ => None,
            };
            // An array whose length is not a literal is still a collection; its length is unknown.
            FieldKind::Collection { len }
        }
        Type::Group(g) => field_kind(&g.elem),
        Type::Paren(p) => field_kind(&p.elem),
        _ if collection_element(ty).is_some() => FieldKind::Collection { len: None },
        _ => FieldKind::Single,
    }
}

/// The element type of `Vec<T>` or `[T; N]`.
fn collection_element(ty: &Type) -> Option<&Type> {
    match ty {
        Type::Array(a) => Some(&a.elem),
        Type::Group(g) => collection_element(&g.elem),
        Type::Paren(p) => collection_element(&p.elem),
        Type::Path(p) if p.qself.is_none() => {
            let last = p.path.segments.last()?;
            if last.ident != "Vec" {
                return None;
            }
            match &last.arguments {
                syn::PathArguments::AngleBracketed(args) => {
                    args.args.iter().find_map(|a| match a {
                        syn::GenericArgument::Type(t) => Some(t),
                        _ => None,
                    })
                }
                _ => None,
            }
        }
        _ => None,
    }
}

/// Types that are certainly not modules with a `forward`, described for the error message.
fn non_module(ty: &Type) -> Option<String> {
    const NOT_MODULES: &[&str] = &[
        "bool",
        "char",
        "f32",
        "f64",
        "i8",
        "i16",
        "i32",
        "i64",
        "i128",
        "isize",
        "u8",
        "u16",
        "u32",
        "u64",
        "u128",
        "usize",
        "String",
        "str",
        "Tensor",
        "Param",
        "Ignored",
        "PhantomData",
        "RunningState",
        "Option",
        "HashMap",
        "BTreeMap",
    ];
    match ty {
        Type::Path(p) => {
            let last = p.path.segments.last()?;
            let name = last.ident.to_string();
            if NOT_MODULES.contains(&name.as_str()) {
                Some(format!("`{}`", pretty(ty)))
            } else if name == "Vec" {
                collection_element(ty)
                    .and_then(non_module)
                    .map(|inner| format!("a `Vec` of {inner}"))
            } else {
                None
            }
        }
        Type::Group(g) => non_module(&g.elem),
        Type::Paren(p) => non_module(&p.elem),
        Type::Tuple(_) => Some(format!("the tuple `{}`", pretty(ty))),
        Type::Reference(_) | Type::Ptr(_) => Some(format!("the reference `{}`", pretty(ty))),
        Type::Slice(_)
        | Type::BareFn(_)
        | Type::Never(_)
        | Type::TraitObject(_)
        | Type::ImplTrait(_) => Some(format!("`{}`", pretty(ty))),
        _ => None,
    }
}

/// A type as source text, without the spaces `to_string` puts around punctuation.
pub(crate) fn pretty(ty: &Type) -> String {
    let s = ty.to_token_stream().to_string();
    s.replace(" < ", "<")
        .replace("< ", "<")
        .replace(" >", ">")
        .replace(" , ", ", ")
        .replace(" ; ", "; ")
        .replace("& ", "&")
        .replace(" :: ", "::")
}

fn cross_field(input: &DeriveInput, specs: &[TapFieldSpec], cx: &mut Ctxt) {
    let teachers: Vec<&TapFieldSpec> = specs.iter().filter(|s| s.role == Role::Teacher).collect();
    if let Some((first, rest)) = teachers.split_first() {
        for extra in rest {
            cx.error_at(
                extra.role_span,
                format!("`#[framer(teacher)]` may be used on at most one field, and `{}` is already the teacher", first.ident),
            );
        }
    }
    let students: Vec<&TapFieldSpec> = specs.iter().filter(|s| s.role == Role::Student).collect();
    if students.is_empty() {
        if !cx.has_errors() {
            cx.error_spanned_by(
                &input.ident,
                "`#[framer]` needs at least one `#[framer(student)]` field: a module, or a `Vec` of \
                 blocks whose every element is a student",
            );
        }
        return;
    }
    // The number of students is known when no field taps a whole `Vec`.
    let known: Option<usize> = students.iter().try_fold(0usize, |acc, s| {
        let n = match (&s.kind, &s.indices) {
            (_, Some(list)) => Some(list.len()),
            (FieldKind::Single, None) => Some(1),
            (FieldKind::Collection { len }, None) => *len,
        }?;
        Some(acc + n)
    });
    if let Some(n) = known
        && n < 2
    {
        cx.error_at(
            students[0].role_span,
            format!(
                "FRAMER needs at least 2 students (each student's negative is another student), \
                 but these attributes select {n}"
            ),
        );
    }
}

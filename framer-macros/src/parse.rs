//! Parsing and validation: `#[framer(..)]` attributes → [`Model`], every error accumulated.

use proc_macro2::{Span, TokenTree};
use quote::ToTokens;
use syn::meta::ParseNestedMeta;
use syn::parse::ParseStream;
use syn::punctuated::Punctuated;
use syn::{Attribute, Data, DeriveInput, Fields, GenericParam, Ident, LitInt, Token, Type};

use crate::ctxt::Ctxt;
use crate::model::{FieldKind, Model, Readout, Role, TapFieldSpec};
use crate::suggest::unknown_key_message;

/// The hidden wrapper under which the attribute macro passes its arguments to the derive.
pub(crate) const CONTAINER: &str = "__container";
/// Container keys.
const CONTAINER_KEYS: &[&str] = &["readout", "heads"];
/// Field keys.
const FIELD_KEYS: &[&str] = &["student", "teacher", "indices", "tap"];
/// Kinds of generated heads.
const HEAD_KINDS: &[&str] = &["conv1x1"];

/// Parses and validates the struct. Errors go to `cx`; `None` when the model is unusable.
pub(crate) fn model(input: &DeriveInput, cx: &mut Ctxt) -> Option<Model> {
    let fields = match &input.data {
        Data::Struct(s) => match &s.fields {
            Fields::Named(named) => named.named.iter().collect::<Vec<_>>(),
            Fields::Unnamed(_) => {
                cx.error_spanned_by(&input.ident, TUPLE_STRUCT);
                return None;
            }
            Fields::Unit => Vec::new(),
        },
        Data::Enum(e) => {
            cx.error_at(e.enum_token.span, NOT_A_STRUCT);
            return None;
        }
        Data::Union(u) => {
            cx.error_at(u.union_token.span, NOT_A_STRUCT);
            return None;
        }
    };

    let readout = container(&input.attrs, cx);
    let backend_index = backend_index(input, cx);

    let mut specs = Vec::new();
    for field in fields {
        if let (Some(ident), Some(spec)) = (&field.ident, field_spec(field, cx)) {
            specs.push(TapFieldSpec {
                ident: ident.clone(),
                ..spec
            });
        }
    }
    cross_field(input, &specs, cx);

    Some(Model {
        ident: input.ident.clone(),
        generics: input.generics.clone(),
        backend_index: backend_index?,
        readout: readout?,
        fields: specs,
    })
}

pub(crate) const TUPLE_STRUCT: &str = "`#[framer]` needs a struct with named fields: tap names are \
     burn module paths built from field names";
pub(crate) const NOT_A_STRUCT: &str = "`#[framer]` only supports structs with named fields";

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

/// Consumes the value of an unknown key so that parsing can go on with the next key.
fn skip_value(meta: &ParseNestedMeta<'_>) -> syn::Result<()> {
    let input = meta.input;
    if input.peek(Token![=]) {
        input.parse::<Token![=]>()?;
    }
    while !input.is_empty() && !input.peek(Token![,]) {
        input.parse::<TokenTree>()?;
    }
    Ok(())
}

fn meta_key(meta: &ParseNestedMeta<'_>) -> String {
    meta.path.to_token_stream().to_string().replace(' ', "")
}

/// Container keys, from `#[framer(__container(..))]`.
fn container(attrs: &[Attribute], cx: &mut Ctxt) -> Option<Readout> {
    let mut readout: Option<(Span, Readout)> = None;
    let mut ok = true;
    for attr in attrs.iter().filter(|a| a.path().is_ident("framer")) {
        let result = attr.parse_nested_meta(|meta| {
            if meta.path.is_ident(CONTAINER) {
                meta.parse_nested_meta(|meta| container_key(meta, &mut readout, cx))
            } else {
                cx.push(meta.error(
                    "field attributes such as `student` go on fields; on the struct, \
                     `#[framer(..)]` takes `readout = ..` or `heads = ..`",
                ));
                skip_value(&meta)
            }
        });
        if let Err(e) = result {
            cx.push(e);
            ok = false;
        }
    }
    ok.then(|| readout.map_or(Readout::Identity, |(_, r)| r))
}

fn container_key(
    meta: ParseNestedMeta<'_>,
    readout: &mut Option<(Span, Readout)>,
    cx: &mut Ctxt,
) -> syn::Result<()> {
    let key = meta_key(&meta);
    let span = meta
        .path
        .to_token_stream()
        .into_iter()
        .next()
        .map_or(Span::call_site(), |t| t.span());
    let parsed = match key.as_str() {
        "readout" => {
            let value = meta.value()?;
            let method: Ident = value.parse().map_err(|e| {
                syn::Error::new(
                    e.span(),
                    "expected a method name: `readout = method` or `readout = method(local, ..)`",
                )
            })?;
            let mut args = Vec::new();
            if value.peek(syn::token::Paren) {
                let content;
                syn::parenthesized!(content in value);
                let list =
                    Punctuated::<Ident, Token![,]>::parse_terminated(&content).map_err(|e| {
                        syn::Error::new(
                            e.span(),
                            "readout arguments are names of local variables of `forward`: \
                         `readout = method(temb, height, width)`",
                        )
                    })?;
                args.extend(list);
            }
            Readout::Method { method, args }
        }
        "heads" => {
            let value = meta.value()?;
            let kind: Ident = value.parse()?;
            if !HEAD_KINDS.iter().any(|k| kind == k) {
                cx.error_spanned_by(
                    &kind,
                    unknown_key_message("head kind", &kind.to_string(), HEAD_KINDS),
                );
            }
            Readout::Heads
        }
        other => {
            cx.push(meta.error(unknown_key_message(
                "framer attribute",
                other,
                CONTAINER_KEYS,
            )));
            return skip_value(&meta);
        }
    };
    match readout {
        Some((_, previous)) => {
            let same = matches!(
                (&*previous, &parsed),
                (Readout::Heads, Readout::Heads) | (Readout::Method { .. }, Readout::Method { .. })
            );
            if same {
                cx.error_at(span, format!("duplicate framer attribute `{key}`"));
            } else {
                cx.error_at(
                    span,
                    "`readout` and `heads` are two ways to read students out: use one of them",
                );
            }
        }
        None => *readout = Some((span, parsed)),
    }
    Ok(())
}

/// Keys found on one field, with the span of each.
#[derive(Default)]
struct FieldKeys {
    student: Option<Span>,
    teacher: Option<Span>,
    indices: Option<(Span, Vec<(usize, Span)>)>,
    tap: Option<(Span, syn::Index)>,
}

fn duplicate(cx: &mut Ctxt, span: Span, key: &str) {
    cx.error_at(span, format!("duplicate framer attribute `{key}`"));
}

fn field_keys(attrs: &[Attribute], cx: &mut Ctxt) -> FieldKeys {
    let mut keys = FieldKeys::default();
    for attr in attrs.iter().filter(|a| a.path().is_ident("framer")) {
        if let syn::Meta::Path(path) = &attr.meta {
            cx.error_spanned_by(
                path,
                "expected `#[framer(student)]` or `#[framer(teacher)]`",
            );
            continue;
        }
        let result = attr.parse_nested_meta(|meta| {
            let key = meta_key(&meta);
            let span = meta
                .path
                .segments
                .first()
                .map_or(Span::call_site(), |s| s.ident.span());
            match key.as_str() {
                "student" | "teacher" => {
                    if !meta.input.is_empty() && !meta.input.peek(Token![,]) {
                        cx.push(meta.error(format!("`{key}` takes no value")));
                        return skip_value(&meta);
                    }
                    let slot = if key == "student" {
                        &mut keys.student
                    } else {
                        &mut keys.teacher
                    };
                    if slot.is_some() {
                        duplicate(cx, span, &key);
                    } else {
                        *slot = Some(span);
                    }
                }
                "indices" => {
                    let value = meta.value()?;
                    let list = parse_indices(value)?;
                    if keys.indices.is_some() {
                        duplicate(cx, span, &key);
                    } else {
                        keys.indices = Some((span, list));
                    }
                }
                "tap" => {
                    let value = meta.value()?;
                    let index = parse_element(value)?;
                    if keys.tap.is_some() {
                        duplicate(cx, span, &key);
                    } else {
                        keys.tap = Some((span, index));
                    }
                }
                other => {
                    cx.push(meta.error(unknown_key_message(
                        "framer field attribute",
                        other,
                        FIELD_KEYS,
                    )));
                    return skip_value(&meta);
                }
            }
            Ok(())
        });
        if let Err(e) = result {
            cx.push(e);
        }
    }
    keys
}

fn parse_indices(input: ParseStream<'_>) -> syn::Result<Vec<(usize, Span)>> {
    let expected = "expected a list of element indices: `indices = [0, 3, 7]`";
    if !input.peek(syn::token::Bracket) {
        return Err(input.error(expected));
    }
    let content;
    syn::bracketed!(content in input);
    let list = Punctuated::<LitInt, Token![,]>::parse_terminated(&content)
        .map_err(|e| syn::Error::new(e.span(), expected))?;
    list.iter()
        .map(|lit| lit.base10_parse::<usize>().map(|i| (i, lit.span())))
        .collect::<syn::Result<Vec<_>>>()
        .map_err(|e| syn::Error::new(e.span(), expected))
}

fn parse_element(input: ParseStream<'_>) -> syn::Result<syn::Index> {
    let expected = "expected a tuple element: `tap = .0`";
    input
        .parse::<Token![.]>()
        .map_err(|e| syn::Error::new(e.span(), expected))?;
    let lit: LitInt = input
        .parse()
        .map_err(|e| syn::Error::new(e.span(), expected))?;
    if !lit.suffix().is_empty() {
        return Err(syn::Error::new(lit.span(), expected));
    }
    let index = lit
        .base10_parse::<u32>()
        .map_err(|e| syn::Error::new(e.span(), expected))?;
    Ok(syn::Index {
        index,
        span: lit.span(),
    })
}

/// Parses one field's keys and checks them against the field's type. `None` for fields without
/// a role (and for broken ones, after reporting).
fn field_spec(field: &syn::Field, cx: &mut Ctxt) -> Option<TapFieldSpec> {
    let keys = field_keys(&field.attrs, cx);
    let ident = field.ident.clone()?;
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
            return None;
        }
    };
    let role_name = if role == Role::Student {
        "student"
    } else {
        "teacher"
    };

    let kind = field_kind(&field.ty);
    let element_ty = match (&kind, &field.ty) {
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
            &field.ty,
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

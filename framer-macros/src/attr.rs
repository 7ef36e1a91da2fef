//! The `#[framer(..)]` attributes: container keys (`readout`, `heads`, `loss`) and field keys
//! (`student`, `teacher`, `indices`, `tap`, `weight`), read with their spans. Unknown and
//! duplicate keys are reported here; what the keys mean together is checked in [`crate::valid`].

use proc_macro2::{Span, TokenTree};
use quote::ToTokens;
use syn::meta::ParseNestedMeta;
use syn::parse::ParseStream;
use syn::punctuated::Punctuated;
use syn::{Attribute, Ident, LitInt, Token};

use crate::ctxt::Ctxt;
use crate::model::Readout;
use crate::suggest::unknown_key_message;

/// The hidden wrapper under which the attribute macro passes its arguments to the derive.
pub(crate) const CONTAINER: &str = "__container";
/// Container keys.
const CONTAINER_KEYS: &[&str] = &["readout", "heads", "loss"];
/// Keys of `loss(..)`: the FRAMER loss defaults of this model, with the schedule's names (and
/// the reference's flag names as aliases).
const LOSS_KEYS: &[&str] = &[
    "lambda",
    "cutoff",
    "radius",
    "temperature",
    "tau",
    "adaptive_weight",
    "faw",
    "alignment_modulation",
    "fam",
];
/// Field keys.
const FIELD_KEYS: &[&str] = &["student", "teacher", "indices", "tap", "weight"];
/// Kinds of generated heads.
const HEAD_KINDS: &[&str] = &["conv1x1"];

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

/// Container keys, from `#[framer(__container(..))]`: the readout and the loss defaults.
pub(crate) fn container(attrs: &[Attribute], cx: &mut Ctxt) -> Option<(Readout, Vec<LossDefault>)> {
    let mut readout: Option<(Span, Readout)> = None;
    let mut loss: Vec<LossDefault> = Vec::new();
    let mut ok = true;
    for attr in attrs.iter().filter(|a| a.path().is_ident("framer")) {
        let result = attr.parse_nested_meta(|meta| {
            if meta.path.is_ident(CONTAINER) {
                meta.parse_nested_meta(|meta| {
                    if meta.path.is_ident("loss") {
                        meta.parse_nested_meta(|meta| loss_key(meta, &mut loss, cx))
                    } else {
                        container_key(meta, &mut readout, cx)
                    }
                })
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
    check_loss(&loss, cx);
    ok.then(|| (readout.map_or(Readout::Identity, |(_, r)| r), loss))
}

/// One key of `loss(..)`.
fn loss_key(meta: ParseNestedMeta<'_>, loss: &mut Vec<LossDefault>, cx: &mut Ctxt) -> syn::Result<()> {
    let written = meta_key(&meta);
    let span = meta.path.get_ident().map_or(Span::call_site(), Ident::span);
    let key = match written.as_str() {
        "tau" => "temperature",
        "faw" => "adaptive_weight",
        "fam" => "alignment_modulation",
        other => match LOSS_KEYS.iter().find(|k| **k == other) {
            Some(k) => *k,
            None => {
                cx.push(meta.error(unknown_key_message("framer loss setting", other, LOSS_KEYS)));
                return skip_value(&meta);
            }
        },
    };
    let value = meta.value()?;
    let lit: syn::Lit = value.parse()?;
    let flag = matches!(key, "adaptive_weight" | "alignment_modulation");
    let parsed = match (&lit, flag) {
        (syn::Lit::Bool(b), true) => LossValue::Flag(b.value),
        (syn::Lit::Float(f), false) => LossValue::Number(f.base10_parse::<f64>()?),
        (syn::Lit::Int(i), false) => LossValue::Number(i.base10_parse::<f64>()?),
        (_, true) => {
            cx.error_spanned_by(&lit, format!("`{written}` takes `true` or `false`"));
            return Ok(());
        }
        (_, false) => {
            cx.error_spanned_by(&lit, format!("`{written}` takes a number, e.g. `{written} = 0.2`"));
            return Ok(());
        }
    };
    if let LossValue::Number(x) = parsed {
        let range = match key {
            "cutoff" | "radius" => (x > 0.0 && x < 1.0).then_some(()).ok_or("in (0, 1)"),
            "temperature" => (x > 0.0 && x.is_finite()).then_some(()).ok_or("> 0"),
            _ => (x >= 0.0 && x.is_finite()).then_some(()).ok_or("≥ 0"),
        };
        if let Err(what) = range {
            cx.error_spanned_by(&lit, format!("`{written}` must be {what}, got {x}"));
            return Ok(());
        }
    }
    if loss.iter().any(|d| d.key == key) {
        cx.error_at(span, format!("duplicate framer loss setting `{key}`"));
        return Ok(());
    }
    loss.push(LossDefault { key, value: parsed, span });
    Ok(())
}

/// Checks across the keys of `loss(..)`.
fn check_loss(loss: &[LossDefault], cx: &mut Ctxt) {
    let cutoff = loss.iter().find(|d| d.key == "cutoff");
    if let (Some(_), Some(radius)) = (cutoff, loss.iter().find(|d| d.key == "radius")) {
        cx.error_at(
            radius.span,
            "`cutoff` (the quantile mask) and `radius` (the radial mask) choose two different \
             masks: give one of them",
        );
    }
}

/// A FRAMER loss default declared on the struct: `loss(cutoff = 0.2, tau = 1.0, faw = false)`.
pub(crate) struct LossDefault {
    /// The schedule's key (`temperature` for `tau`, `adaptive_weight` for `faw`, ...).
    pub key: &'static str,
    /// The value.
    pub value: LossValue,
    /// Where the key is written.
    pub span: Span,
}

/// The value of a loss default.
pub(crate) enum LossValue {
    /// `lambda`, `cutoff`, `radius`, `temperature`.
    Number(f64),
    /// `adaptive_weight`, `alignment_modulation`.
    Flag(bool),
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
pub(crate) struct FieldKeys {
    pub student: Option<Span>,
    pub teacher: Option<Span>,
    pub indices: Option<(Span, Vec<(usize, Span)>)>,
    pub tap: Option<(Span, syn::Index)>,
    /// `weight = x`: the key's span and the value (checked: finite, ≥ 0).
    pub weight: Option<(Span, f64)>,
}

fn duplicate(cx: &mut Ctxt, span: Span, key: &str) {
    cx.error_at(span, format!("duplicate framer attribute `{key}`"));
}

pub(crate) fn field_keys(attrs: &[Attribute], cx: &mut Ctxt) -> FieldKeys {
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
                "weight" => {
                    let value = meta.value()?;
                    let expr: syn::Expr = value.parse()?;
                    if keys.weight.is_some() {
                        duplicate(cx, span, &key);
                    } else if let Some(w) = parse_weight(&expr, cx) {
                        keys.weight = Some((span, w));
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

/// The value of `weight = ..`: a number literal, finite and `≥ 0` (errors at the value).
fn parse_weight(expr: &syn::Expr, cx: &mut Ctxt) -> Option<f64> {
    let number = |lit: &syn::Lit| match lit {
        syn::Lit::Float(f) => f.base10_parse::<f64>().ok(),
        syn::Lit::Int(i) => i.base10_parse::<f64>().ok(),
        _ => None,
    };
    let value = match expr {
        syn::Expr::Lit(l) => number(&l.lit),
        syn::Expr::Unary(syn::ExprUnary { op: syn::UnOp::Neg(_), expr, .. }) => match &**expr {
            syn::Expr::Lit(l) => number(&l.lit).map(|x| -x),
            _ => None,
        },
        _ => None,
    };
    match value {
        None => cx.error_spanned_by(
            expr,
            "`weight` takes a number, the student's weight in the loss: `weight = 0.5`",
        ),
        Some(w) if !w.is_finite() => {
            cx.error_spanned_by(expr, format!("`weight` must be a finite number, got {w}"))
        }
        Some(w) if w < 0.0 => cx.error_spanned_by(expr, format!("`weight` must be ≥ 0, got {w}")),
        Some(w) => return Some(w),
    }
    None
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

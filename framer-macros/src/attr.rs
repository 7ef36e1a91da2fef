//! The `#[framer(..)]` attributes: container keys (`readout`, `heads`) and field keys (`student`,
//! `teacher`, `indices`, `tap`), read with their spans. Unknown and duplicate keys are reported
//! here; what the keys mean together is checked in [`crate::valid`].

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
const CONTAINER_KEYS: &[&str] = &["readout", "heads"];
/// Field keys.
const FIELD_KEYS: &[&str] = &["student", "teacher", "indices", "tap"];
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

/// Container keys, from `#[framer(__container(..))]`.
pub(crate) fn container(attrs: &[Attribute], cx: &mut Ctxt) -> Option<Readout> {
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
pub(crate) struct FieldKeys {
    pub student: Option<Span>,
    pub teacher: Option<Span>,
    pub indices: Option<(Span, Vec<(usize, Span)>)>,
    pub tap: Option<(Span, syn::Index)>,
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

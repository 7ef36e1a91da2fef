//! `#[framer]` on the struct: checks the item kind and hands the struct to the hidden derive,
//! which sees the fields after `cfg` stripping and reads the `#[framer(..)]` field markers as
//! inert helper attributes (the struct is not modified).

use proc_macro2::TokenStream;
use quote::{ToTokens, quote};
use syn::{Fields, Item};

use crate::ast::{NOT_A_STRUCT, TUPLE_STRUCT};
use crate::attr::CONTAINER;

pub(crate) fn expand(args: TokenStream, item: TokenStream) -> TokenStream {
    let parsed: Item = match syn::parse2(item.clone()) {
        Ok(parsed) => parsed,
        Err(e) => {
            let error = e.to_compile_error();
            return quote!(#error #item);
        }
    };
    match parsed {
        Item::Struct(s) if matches!(s.fields, Fields::Named(_) | Fields::Unit) => {
            let container = syn::Ident::new(CONTAINER, proc_macro2::Span::call_site());
            let container = if args.is_empty() {
                quote!()
            } else {
                quote!(#[framer(#container(#args))])
            };
            let missing_derive = if derives_module(&s.attrs) {
                TokenStream::new()
            } else {
                syn::Error::new(proc_macro2::Span::call_site(), NO_MODULE_DERIVE)
                    .into_compile_error()
            };
            quote! {
                #missing_derive
                #[derive(::framer::__private::FramerDerive)]
                #container
                #s
            }
        }
        Item::Struct(mut s) => {
            let error = syn::Error::new_spanned(&s.ident, TUPLE_STRUCT).into_compile_error();
            strip_fields(&mut s.fields);
            quote!(#error #s)
        }
        Item::Enum(mut e) => {
            let error = syn::Error::new(e.enum_token.span, NOT_A_STRUCT).into_compile_error();
            for variant in &mut e.variants {
                variant.attrs.retain(|a| !a.path().is_ident("framer"));
                strip_fields(&mut variant.fields);
            }
            quote!(#error #e)
        }
        Item::Union(mut u) => {
            let error = syn::Error::new(u.union_token.span, NOT_A_STRUCT).into_compile_error();
            for field in &mut u.fields.named {
                field.attrs.retain(|a| !a.path().is_ident("framer"));
            }
            quote!(#error #u)
        }
        Item::Impl(i) => {
            let error = syn::Error::new(
                i.impl_token.span,
                "`#[framer]` goes on the model struct; on the `impl` block that defines `forward`, \
                 use `#[framer_forward]`",
            )
            .into_compile_error();
            quote!(#error #i)
        }
        other => {
            let error = syn::Error::new_spanned(
                first_token(&other),
                "`#[framer]` goes on a model struct with named fields that derives `Module`",
            )
            .into_compile_error();
            quote!(#error #other)
        }
    }
}

/// The struct has no `#[derive(Module)]` below `#[framer]`: either it has none, or `#[framer]` was
/// written below it (a derive above an attribute macro has already run when the attribute sees
/// the struct, and leaves no trace in it, so the two cases look the same here).
const NO_MODULE_DERIVE: &str = "`#[framer]` sees no `#[derive(Module)]` below it: the struct must \
     derive burn's `Module`, and `#[framer(..)]` must be written above the derive (an attribute \
     below `#[derive(..)]` does not see it). Write `#[framer(..)]`, then \
     `#[derive(Module, Debug)]`, then the struct";

/// Whether the attributes derive `Module` (`derive(Module)`, `derive(burn::module::Module)`, or
/// the same inside `cfg_attr(..)`).
fn derives_module(attrs: &[syn::Attribute]) -> bool {
    fn mentions(tokens: TokenStream, in_derive: bool) -> bool {
        let mut after_derive = false;
        for token in tokens {
            match token {
                proc_macro2::TokenTree::Ident(i) => {
                    if in_derive && i == "Module" {
                        return true;
                    }
                    after_derive = i == "derive";
                }
                proc_macro2::TokenTree::Group(g) => {
                    if mentions(g.stream(), in_derive || after_derive) {
                        return true;
                    }
                    after_derive = false;
                }
                proc_macro2::TokenTree::Punct(_) | proc_macro2::TokenTree::Literal(_) => {}
            }
        }
        false
    }
    attrs.iter().any(|a| {
        if a.path().is_ident("derive") {
            let syn::Meta::List(list) = &a.meta else {
                return false;
            };
            mentions(list.tokens.clone(), true)
        } else if a.path().is_ident("cfg_attr") {
            mentions(a.meta.to_token_stream(), false)
        } else {
            false
        }
    })
}

/// Removes `#[framer(..)]` field attributes so that a rejected item does not add
/// "cannot find attribute" errors to the real one.
fn strip_fields(fields: &mut Fields) {
    for field in fields.iter_mut() {
        field.attrs.retain(|a| !a.path().is_ident("framer"));
    }
}

fn first_token(item: &Item) -> TokenStream {
    let tokens = item.to_token_stream();
    let mut iter = tokens
        .into_iter()
        .skip_while(|t| matches!(t, proc_macro2::TokenTree::Punct(p) if p.as_char() == '#'));
    // Skip outer attributes (`#` followed by a bracket group), then point at the first keyword.
    loop {
        match iter.next() {
            Some(proc_macro2::TokenTree::Group(g))
                if g.delimiter() == proc_macro2::Delimiter::Bracket =>
            {
                continue;
            }
            Some(proc_macro2::TokenTree::Punct(p)) if p.as_char() == '#' => continue,
            Some(t) => return t.into_token_stream(),
            None => return TokenStream::new(),
        }
    }
}

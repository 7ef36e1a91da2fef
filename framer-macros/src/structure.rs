//! `#[framer]` on the struct: checks the item kind and hands the struct to the hidden derive,
//! which sees the fields after `cfg` stripping and reads the `#[framer(..)]` field markers as
//! inert helper attributes (the struct is not modified).

use proc_macro2::TokenStream;
use quote::{ToTokens, quote};
use syn::{Fields, Item};

use crate::parse::{CONTAINER, NOT_A_STRUCT, TUPLE_STRUCT};

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
            quote! {
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

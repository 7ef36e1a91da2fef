//! The hidden derive behind `#[framer]`: implements `FramerModel` and defines the bridge macro
//! through which `#[framer_forward]` learns the model's markers.
//!
//! The bridge is a `macro_rules!` named after the struct (`__framer_model_<Struct>`), defined next
//! to the struct. `#[framer_forward]` on a later `impl` block invokes it with the `impl`'s tokens;
//! it forwards them, prefixed by a copy of the struct's markers, to `__framer_forward_expand!`,
//! which generates `forward_with_taps` knowing both the struct and `forward`. A `use` of the
//! bridge gives it path-based scope too, so that an `impl` block written before the struct, in
//! the same module or block, finds it.

use proc_macro2::{Span, TokenStream};
use quote::{format_ident, quote};
use syn::{Data, DeriveInput, Fields};

use crate::ctxt::Ctxt;
use crate::model::{FieldKind, Model, Readout, Role};

/// Name of the bridge macro of the struct `ident`.
pub(crate) fn bridge_name(ident: &syn::Ident) -> syn::Ident {
    format_ident!("__framer_model_{}", ident)
}

pub(crate) fn expand(item: TokenStream) -> TokenStream {
    let input: DeriveInput = match syn::parse2(item) {
        Ok(input) => input,
        Err(e) => return e.to_compile_error(),
    };
    let mut cx = Ctxt::new();
    let model = crate::valid::model(&input, &mut cx);
    match (model, cx.finish()) {
        (Some(model), Ok(())) => {
            let framer_model = framer_model_impl(&model);
            let bridge = bridge(&input, true);
            quote!(#framer_model #bridge)
        }
        (_, result) => {
            let errors = result.err().map(syn::Error::into_compile_error);
            let stub = stub_impl(&input);
            let bridge = bridge(&input, false);
            quote!(#errors #stub #bridge)
        }
    }
}

/// `impl FramerModel<B> for Struct<..>`.
pub(crate) fn framer_model_impl(model: &Model) -> TokenStream {
    let p = quote!(::framer::__private);
    let ident = &model.ident;
    let (impl_generics, ty_generics, where_clause) = model.generics.split_for_impl();
    let readout = match &model.readout {
        Readout::Identity => quote!(#p::ReadoutKind::Identity),
        Readout::Method { method, .. } => {
            let name = method.to_string();
            quote!(#p::ReadoutKind::Method(#name))
        }
        Readout::Heads => quote!(#p::ReadoutKind::Heads),
    };
    let mut tap_fields = Vec::new();
    let mut pushes = Vec::new();
    for f in &model.fields {
        let name = f.ident.to_string();
        let field = &f.ident;
        let role = match f.role {
            Role::Student => quote!(#p::TapRole::Student),
            Role::Teacher => quote!(#p::TapRole::Teacher),
        };
        let elements = match (&f.kind, &f.indices) {
            (FieldKind::Single, _) => quote!(#p::TapElements::Single),
            (FieldKind::Collection { .. }, None) => quote!(#p::TapElements::All),
            (FieldKind::Collection { .. }, Some(list)) => {
                quote!(#p::TapElements::Indices(&[#(#list),*]))
            }
        };
        let element = match &f.element {
            Some(index) => {
                let n = index.index as usize;
                quote!(#p::Some(#n))
            }
            None => quote!(#p::None),
        };
        let weight = f.weight;
        tap_fields.push(quote! {
            #p::TapField { field: #name, role: #role, elements: #elements, element: #element, weight: #weight }
        });
        pushes.push(match (&f.kind, &f.indices) {
            (FieldKind::Single, _) => quote! {
                taps.push(#p::TapInfo::new(#name, #p::None, #role));
            },
            (FieldKind::Collection { .. }, None) => quote! {
                for i in 0..self.#field.len() {
                    taps.push(#p::TapInfo::new(#name, #p::Some(i), #role));
                }
            },
            (FieldKind::Collection { .. }, Some(list)) => quote! {
                for i in [#(#list),*] {
                    if i < self.#field.len() {
                        taps.push(#p::TapInfo::new(#name, #p::Some(i), #role));
                    }
                }
            },
        });
    }
    if model.teacher_is_output() {
        pushes.push(quote! {
            taps.push(#p::TapInfo::new(#p::OUTPUT_TAP, #p::None, #p::TapRole::Teacher));
        });
    }
    let backend = backend_ident(model);
    let loss_defaults = model.loss.iter().map(|d| {
        let key = d.key;
        match d.value {
            crate::attr::LossValue::Number(x) => quote!(#p::LossDefault::Number(#key, #x)),
            crate::attr::LossValue::Flag(b) => quote!(#p::LossDefault::Flag(#key, #b)),
        }
    });
    quote! {
        #[automatically_derived]
        impl #impl_generics #p::FramerModel<#backend> for #ident #ty_generics #where_clause {
            const READOUT: #p::ReadoutKind = #readout;
            const TAP_FIELDS: &'static [#p::TapField] = &[#(#tap_fields),*];
            const LOSS_DEFAULTS: &'static [#p::LossDefault] = &[#(#loss_defaults),*];

            fn taps(&self) -> #p::Vec<#p::TapInfo> {
                let mut taps = #p::Vec::new();
                #(#pushes)*
                taps
            }
        }
    }
}

fn backend_ident(model: &Model) -> TokenStream {
    match model.generics.params.iter().nth(model.backend_index) {
        Some(syn::GenericParam::Type(t)) => {
            let ident = &t.ident;
            quote!(#ident)
        }
        _ => quote!(B),
    }
}

/// An implementation with no taps, emitted next to the errors so that code using the model
/// does not fail a second time.
fn stub_impl(input: &DeriveInput) -> TokenStream {
    let has_b = input
        .generics
        .params
        .iter()
        .any(|p| matches!(p, syn::GenericParam::Type(t) if t.ident == "B"));
    if !has_b {
        return TokenStream::new();
    }
    let p = quote!(::framer::__private);
    let ident = &input.ident;
    let (impl_generics, ty_generics, where_clause) = input.generics.split_for_impl();
    quote! {
        #[automatically_derived]
        impl #impl_generics #p::FramerModel<B> for #ident #ty_generics #where_clause {
            const READOUT: #p::ReadoutKind = #p::ReadoutKind::Identity;
            const TAP_FIELDS: &'static [#p::TapField] = &[];
            fn taps(&self) -> #p::Vec<#p::TapInfo> {
                #p::Vec::new()
            }
        }
    }
}

/// The bridge macro. `valid == false` makes `#[framer_forward]` emit only a stub method.
fn bridge(input: &DeriveInput, valid: bool) -> TokenStream {
    let name = bridge_name(&input.ident);
    let spec = if valid { spec(input) } else { quote!(stub) };
    let dollar = proc_macro2::Punct::new('$', proc_macro2::Spacing::Alone);
    let body = quote!(#dollar body);
    let p = quote!(::framer::__private);
    let _ = Span::call_site();
    quote! {
        #[doc(hidden)]
        #[allow(unused_macros)]
        macro_rules! #name {
            (#dollar (#body:tt)*) => {
                #p::__framer_forward_expand! { #spec #dollar (#body)* }
            };
        }
        // Path-based scope as well: the `impl` block may come before the struct in the module.
        #[doc(hidden)]
        #[allow(unused_imports)]
        use #name;
    }
}

/// The struct reduced to what `forward_with_taps` needs: name, generics, the container
/// arguments, and the fields with their `#[framer(..)]` attributes and types.
pub(crate) fn spec(input: &DeriveInput) -> TokenStream {
    let ident = &input.ident;
    let generics = &input.generics;
    let where_clause = &input.generics.where_clause;
    let attrs = input.attrs.iter().filter(|a| a.path().is_ident("framer"));
    let fields = match &input.data {
        Data::Struct(s) => match &s.fields {
            Fields::Named(named) => named
                .named
                .iter()
                .filter(|f| f.attrs.iter().any(|a| a.path().is_ident("framer")))
                .map(|f| {
                    let attrs = f.attrs.iter().filter(|a| a.path().is_ident("framer"));
                    let ident = &f.ident;
                    let ty = &f.ty;
                    quote!(#(#attrs)* #ident: #ty)
                })
                .collect(),
            _ => Vec::new(),
        },
        _ => Vec::new(),
    };
    quote! {
        model { #(#attrs)* struct #ident #generics #where_clause { #(#fields),* } }
    }
}

//! `#[framer_forward]` on the `impl` block, and the bridge expansion that generates
//! `forward_with_taps`.

use proc_macro2::{Span, TokenStream};
use quote::{format_ident, quote, quote_spanned};
use syn::parse::{Parse, ParseStream};
use syn::spanned::Spanned;
use syn::{DeriveInput, FnArg, ImplItem, ImplItemFn, ItemImpl, ReturnType, Type};

use crate::ctxt::Ctxt;
use crate::derive::bridge_name;
use crate::model::{Model, Readout};

const NOT_AN_IMPL: &str =
    "`#[framer_forward]` goes on the `impl` block that defines `fn forward(&self, ..)`";

/// Checks the `impl` block, keeps it as written, and asks the model's bridge macro for
/// `forward_with_taps`.
pub(crate) fn expand_attribute(args: TokenStream, item: TokenStream) -> TokenStream {
    let mut cx = Ctxt::new();
    if !args.is_empty() {
        cx.error_spanned_by(&args, "`#[framer_forward]` takes no arguments; the taps are declared on the struct with `#[framer(..)]`");
    }
    let item_impl: ItemImpl = match syn::parse2(item.clone()) {
        Ok(i) => i,
        Err(_) => {
            cx.error_at(Span::call_site(), NOT_AN_IMPL);
            let errors = cx.into_compile_errors();
            return quote!(#errors #item);
        }
    };
    let self_ident = check_impl(&item_impl, &mut cx);
    match (self_ident, cx.finish()) {
        (Some(self_ident), Ok(())) => {
            let mut bridge = bridge_name(&self_ident);
            bridge.set_span(self_ident.span());
            quote_spanned! {self_ident.span()=>
                #item_impl
                #bridge! { #item_impl }
            }
        }
        (_, result) => {
            let errors = result.err().map(syn::Error::into_compile_error);
            quote!(#errors #item_impl)
        }
    }
}

/// The struct's name, after checking that `forward` exists and has a usable signature.
fn check_impl(item: &ItemImpl, cx: &mut Ctxt) -> Option<syn::Ident> {
    if let Some((_, path, _)) = &item.trait_ {
        cx.error_spanned_by(
            path,
            "`#[framer_forward]` goes on the inherent `impl` block that defines `forward`, not on a \
             trait implementation",
        );
        return None;
    }
    let self_ident = match &*item.self_ty {
        Type::Path(p) if p.qself.is_none() => p.path.segments.last().map(|s| s.ident.clone()),
        _ => None,
    };
    let Some(self_ident) = self_ident else {
        cx.error_spanned_by(
            &item.self_ty,
            "`#[framer_forward]` needs an `impl` of a `#[framer]` struct",
        );
        return None;
    };
    match find_forward(item) {
        None => cx.error_spanned_by(
            &item.self_ty,
            format!(
                "`#[framer_forward]` found no `fn forward` in this `impl {self_ident}` block; put it \
                 on the block that defines `fn forward(&self, ..)`"
            ),
        ),
        Some(f) => check_signature(f, cx),
    }
    Some(self_ident)
}

fn find_forward(item: &ItemImpl) -> Option<&ImplItemFn> {
    item.items.iter().find_map(|i| match i {
        ImplItem::Fn(f) if f.sig.ident == "forward" => Some(f),
        _ => None,
    })
}

fn check_signature(f: &ImplItemFn, cx: &mut Ctxt) {
    match f.sig.inputs.first() {
        Some(FnArg::Receiver(r)) if r.reference.is_some() && r.mutability.is_none() => {}
        _ => cx.error_spanned_by(
            &f.sig.ident,
            "`forward` must take `&self` for `#[framer_forward]`",
        ),
    }
    if let ReturnType::Default = f.sig.output {
        cx.error_spanned_by(
            &f.sig.ident,
            "`forward` returns nothing; `#[framer_forward]` needs the prediction it returns (the \
             default teacher)",
        );
    }
    if f.sig.asyncness.is_some() {
        cx.error_spanned_by(
            f.sig.asyncness,
            "`forward` must not be `async` for `#[framer_forward]`",
        );
    }
}

/// Input of `__framer_forward_expand!`: `model { struct .. } impl ..` or `stub impl ..`.
struct BridgeInput {
    model: Option<DeriveInput>,
    item: ItemImpl,
}

impl Parse for BridgeInput {
    fn parse(input: ParseStream<'_>) -> syn::Result<Self> {
        let head: syn::Ident = input.parse()?;
        let model = if head == "model" {
            let content;
            syn::braced!(content in input);
            Some(content.parse()?)
        } else {
            None
        };
        Ok(Self {
            model,
            item: input.parse()?,
        })
    }
}

/// Generates `forward_with_taps` (and its hidden worker) from the model's markers and the
/// `impl` block.
pub(crate) fn expand_bridge(input: TokenStream) -> TokenStream {
    let parsed: BridgeInput = match syn::parse2(input) {
        Ok(p) => p,
        Err(e) => return e.to_compile_error(),
    };
    let Some(forward) = find_forward(&parsed.item) else {
        return TokenStream::new();
    };
    // The derive has already reported any error in the struct's markers: stay quiet here.
    let mut quiet = Ctxt::new();
    let model = parsed
        .model
        .as_ref()
        .and_then(|m| crate::valid::model(m, &mut quiet));
    quiet.discard();
    let Some(model) = model else {
        return stub(&parsed.item, forward, None);
    };
    let mut cx = Ctxt::new();
    let backend = backend_type(&model, &parsed.item, &mut cx);
    match (backend, cx.finish()) {
        (Some(backend), Ok(())) => match tapped(&model, &parsed.item, forward, &backend) {
            Ok(tokens) => tokens,
            Err(e) => {
                let errors = e.into_compile_error();
                let stub = stub(&parsed.item, forward, Some(&backend));
                quote!(#errors #stub)
            }
        },
        (backend, result) => {
            let errors = result.err().map(syn::Error::into_compile_error);
            let stub = stub(&parsed.item, forward, backend.as_ref());
            quote!(#errors #stub)
        }
    }
}

/// The backend type in the `impl`: the self type's generic argument at the struct's `B`.
fn backend_type(model: &Model, item: &ItemImpl, cx: &mut Ctxt) -> Option<Type> {
    let Type::Path(path) = &*item.self_ty else {
        return None;
    };
    let last = path.path.segments.last()?;
    let args: Vec<&syn::GenericArgument> = match &last.arguments {
        syn::PathArguments::AngleBracketed(a) => a.args.iter().collect(),
        _ => Vec::new(),
    };
    match args.get(model.backend_index) {
        Some(syn::GenericArgument::Type(t)) => Some(t.clone()),
        _ => {
            cx.error_spanned_by(
                &item.self_ty,
                format!(
                    "expected `{}` with its backend type argument, e.g. `impl<B: Backend> {}<B>`",
                    model.ident, model.ident
                ),
            );
            None
        }
    }
}

/// Arguments of `forward_with_taps`: `forward`'s, with plain names.
fn plain_args(forward: &ImplItemFn) -> (Vec<TokenStream>, Vec<syn::Ident>) {
    let mut params = Vec::new();
    let mut names = Vec::new();
    for (i, arg) in forward.sig.inputs.iter().skip(1).enumerate() {
        if let FnArg::Typed(t) = arg {
            let name = format_ident!("__framer_arg{}", i);
            let ty = &t.ty;
            params.push(quote!(#name: #ty));
            names.push(name);
        }
    }
    (params, names)
}

fn return_type(forward: &ImplItemFn) -> TokenStream {
    match &forward.sig.output {
        ReturnType::Type(_, ty) => quote!(#ty),
        ReturnType::Default => quote!(()),
    }
}

const DOC: &str = "Runs `forward` and records the FRAMER taps (generated by `#[framer_forward]`).\n\n\
     Takes the same arguments as `forward` and returns `forward`'s output, unchanged, together \
     with the recorded students and teacher.";

fn tapped(
    model: &Model,
    item: &ItemImpl,
    forward: &ImplItemFn,
    backend: &Type,
) -> syn::Result<TokenStream> {
    let p = quote!(::framer::__private);
    let taps = syn::Ident::new("__framer_taps", Span::call_site());
    let crate::rewrite::Rewritten { body, helpers } =
        crate::rewrite::rewrite_body(model, item, forward, &taps, backend)?;

    let (impl_generics, _, where_clause) = item.generics.split_for_impl();
    let self_ty = &item.self_ty;
    let vis = &forward.vis;
    let fn_generics = &forward.sig.generics;
    let fn_where = &forward.sig.generics.where_clause;
    let ret = return_type(forward);
    let (params, names) = plain_args(forward);
    let inputs = forward.sig.inputs.iter().skip(1);
    let in_teacher_space = !matches!(model.readout, Readout::Heads);
    // Spans located at the user's code but resolved here keep the generated names hygienic
    // while type errors point at `forward`'s return type.
    let ret_span = match &forward.sig.output {
        ReturnType::Type(_, ty) => ty.span(),
        ReturnType::Default => forward.sig.ident.span(),
    };
    let span = Span::call_site().located_at(ret_span);
    let output = syn::Ident::new("__framer_output", span);
    let output_teacher = if model.teacher_is_output() {
        quote_spanned! {span=>
            ::framer::__private::record_output(&mut #taps, &#output);
        }
    } else {
        TokenStream::new()
    };
    let receiver = forward.sig.inputs.first();
    let trait_impl = forward_trait_impl(item, forward, backend, false);
    Ok(quote! {
        #trait_impl

        #[automatically_derived]
        impl #impl_generics #self_ty #where_clause {
            #[doc = #DOC]
            #vis fn forward_with_taps #fn_generics (&self, #(#params),*) -> (#ret, #p::Taps<#backend>) #fn_where {
                let mut #taps = #p::Taps::<#backend>::new(#in_teacher_space);
                let #output = self.__framer_forward_tapped(&mut #taps, #(#names),*);
                #output_teacher
                #p::weigh_students(self, &mut #taps);
                (#output, #taps)
            }

            #[doc(hidden)]
            #[allow(clippy::all, unused_mut, unused_variables)]
            fn __framer_forward_tapped #fn_generics (#receiver, #taps: &mut #p::Taps<#backend>, #(#inputs),*) -> #ret #fn_where
            #body

            #(#helpers)*
        }
    })
}

/// A `forward_with_taps` with the right signature and no body, emitted next to errors so that
/// callers of the method do not fail a second time.
fn stub(item: &ItemImpl, forward: &ImplItemFn, backend: Option<&Type>) -> TokenStream {
    let p = quote!(::framer::__private);
    let (impl_generics, _, where_clause) = item.generics.split_for_impl();
    let self_ty = &item.self_ty;
    let vis = &forward.vis;
    let fn_generics = &forward.sig.generics;
    let fn_where = &forward.sig.generics.where_clause;
    let ret = return_type(forward);
    let (params, _) = plain_args(forward);
    let trait_impl = match backend {
        Some(b) => forward_trait_impl(item, forward, b, true),
        None => TokenStream::new(),
    };
    let backend = match backend {
        Some(b) => quote!(#b),
        None => quote!(B),
    };
    quote! {
        #trait_impl
        #[automatically_derived]
        impl #impl_generics #self_ty #where_clause {
            #[doc = #DOC]
            #[allow(unused_variables)]
            #vis fn forward_with_taps #fn_generics (&self, #(#params),*) -> (#ret, #p::Taps<#backend>) #fn_where {
                ::framer::__private::unreachable!("`#[framer]` reported an error at compile time")
            }
        }
    }
}

/// Whether a type names only owned data: no reference, lifetime or `impl Trait`, so that it can
/// stand in an associated type of `framer::FramerForward`.
fn is_owned_type(ty: &Type) -> bool {
    fn scan(tokens: TokenStream) -> bool {
        tokens.into_iter().all(|t| match t {
            proc_macro2::TokenTree::Punct(p) => p.as_char() != '&' && p.as_char() != '\'',
            proc_macro2::TokenTree::Ident(i) => i != "impl" && i != "dyn",
            proc_macro2::TokenTree::Group(g) => scan(g.stream()),
            proc_macro2::TokenTree::Literal(_) => true,
        })
    }
    scan(quote!(#ty))
}

/// `impl framer::FramerForward<B> for Model<B>`: `forward` and `forward_with_taps` over the tuple
/// of `forward`'s arguments. Emitted only when `forward` has no generics of its own and takes
/// owned arguments; otherwise nothing (the inherent `forward_with_taps` remains).
fn forward_trait_impl(item: &ItemImpl, forward: &ImplItemFn, backend: &Type, stub: bool) -> TokenStream {
    let types: Vec<&Type> = forward
        .sig
        .inputs
        .iter()
        .skip(1)
        .filter_map(|a| match a {
            FnArg::Typed(t) => Some(&*t.ty),
            FnArg::Receiver(_) => None,
        })
        .collect();
    if !forward.sig.generics.params.is_empty()
        || forward.sig.generics.where_clause.is_some()
        || !types.iter().all(|t| is_owned_type(t))
        || !matches!(forward.sig.inputs.first(), Some(FnArg::Receiver(r)) if r.reference.is_some() && r.mutability.is_none())
    {
        return TokenStream::new();
    }
    if let ReturnType::Type(_, ty) = &forward.sig.output
        && !is_owned_type(ty)
    {
        return TokenStream::new();
    }
    let p = quote!(::framer::__private);
    let (impl_generics, _, where_clause) = item.generics.split_for_impl();
    let self_ty = &item.self_ty;
    let ret = return_type(forward);
    let names: Vec<syn::Ident> = (0..types.len()).map(|i| format_ident!("__framer_arg{}", i)).collect();
    let args_ty = quote!((#(#types,)*));
    let pattern = quote!((#(#names,)*));
    let (body, tapped_body) = if stub {
        let unreachable = quote!(::framer::__private::unreachable!("`#[framer]` reported an error at compile time"));
        (unreachable.clone(), unreachable)
    } else {
        (
            quote!(let #pattern = args; self.forward(#(#names),*)),
            quote!(let #pattern = args; self.forward_with_taps(#(#names),*)),
        )
    };
    quote! {
        #[automatically_derived]
        impl #impl_generics #p::FramerForward<#backend> for #self_ty #where_clause {
            type Args = #args_ty;
            type Output = #ret;

            #[allow(unused_variables, clippy::unused_unit)]
            fn forward_args(&self, args: Self::Args) -> Self::Output {
                #body
            }

            #[allow(unused_variables, clippy::unused_unit)]
            fn forward_with_taps_args(&self, args: Self::Args) -> (Self::Output, #p::Taps<#backend>) {
                #tapped_body
            }
        }
    }
}

//! The copy of `forward`'s body in which the marked fields' calls record their outputs.
//!
//! Recognised call sites:
//! - `self.field.forward(..)` (a single module);
//! - `self.field[i].forward(..)` (an element of a `Vec`/array);
//! - `x.forward(..)` where `x` is an element bound by a `for` loop over a student collection,
//!   through the adapters of [`crate::chain`] (`zip`, `enumerate`, `rev`, `skip`, `take`,
//!   `step_by`, `chain`). Each collection is enumerated at its source, so the tap is named
//!   `field.{index}` with the element's own index;
//! - `self.helper(..)` where `helper` is a method of the same `impl` block that reaches a
//!   student, however deep: it is redirected to a tapped copy of `helper`
//!   (`__framer_tapped_helper`) that takes the taps collector.

use std::collections::{BTreeSet, HashMap};

use proc_macro2::TokenStream;
use quote::{format_ident, quote};
use syn::visit_mut::VisitMut;
use syn::{FnArg, Ident, ImplItem, ImplItemFn, ItemImpl, Type};

use crate::ctxt::Ctxt;
use crate::model::{FieldKind, Model, Role, TapFieldSpec};

mod call_sites;

use call_sites::Rewriter;

/// The rewritten body of `forward` and the tapped copies of the helpers it reaches.
pub(crate) struct Rewritten {
    /// `forward`'s body, recording the taps into the collector.
    pub body: syn::Block,
    /// `fn __framer_tapped_<helper>(&self, taps, ..)` for each helper that reaches a student.
    pub helpers: Vec<TokenStream>,
}

/// The methods of the annotated `impl` block.
struct Methods<'a> {
    /// Methods framer can follow (`&self` receiver, not `async`/`const`), by name.
    followable: HashMap<String, &'a ImplItemFn>,
    /// Every method name of the block.
    all: BTreeSet<String>,
    /// The fields each followable method reaches, directly or through other helpers (empty
    /// while they are being found).
    reaches: HashMap<String, Vec<bool>>,
}

impl<'a> Methods<'a> {
    fn of(item: &'a ItemImpl) -> Self {
        let mut followable = HashMap::new();
        let mut all = BTreeSet::new();
        for f in item.items.iter().filter_map(|i| match i {
            ImplItem::Fn(f) => Some(f),
            _ => None,
        }) {
            let name = f.sig.ident.to_string();
            all.insert(name.clone());
            let by_ref = matches!(
                f.sig.inputs.first(),
                Some(FnArg::Receiver(r)) if r.reference.is_some() && r.mutability.is_none()
            );
            if by_ref && name != "forward" && f.sig.asyncness.is_none() && f.sig.constness.is_none()
            {
                followable.insert(name, f);
            }
        }
        Self {
            followable,
            all,
            reaches: HashMap::new(),
        }
    }

    fn reaches(&self, name: &str) -> Option<&[bool]> {
        self.reaches
            .get(name)
            .map(Vec::as_slice)
            .filter(|r| r.iter().any(|b| *b))
    }
}

/// Name of the tapped copy of the helper `name`.
fn tapped_name(name: &Ident) -> Ident {
    format_ident!("__framer_tapped_{}", name)
}

/// Rewrites a copy of `forward`'s body, and of each helper of the block it reaches. Errors:
/// unsupported uses of a tapped collection, student calls in closures, and marked fields that
/// the body never reaches (with the helpers outside the block it calls, if any).
pub(crate) fn rewrite_body(
    model: &Model,
    item: &ItemImpl,
    forward: &ImplItemFn,
    taps: &Ident,
    backend: &Type,
) -> syn::Result<Rewritten> {
    let mut methods = Methods::of(item);

    // Pass 1: which fields each helper reaches by itself, and which helpers it calls.
    let mut direct: HashMap<String, (Vec<bool>, Vec<String>)> = HashMap::new();
    for (name, f) in &methods.followable {
        let mut rewriter = Rewriter::new(model, taps, f, &methods);
        let mut block = f.block.clone();
        rewriter.visit_block_mut(&mut block);
        let touched = rewriter
            .seen
            .iter()
            .zip(&rewriter.explained)
            .map(|(s, e)| *s || *e)
            .collect();
        direct.insert(name.clone(), (touched, rewriter.calls.clone()));
        rewriter.cx.discard();
    }
    // Fields reached through other helpers, however deep.
    let mut reaches: HashMap<String, Vec<bool>> = direct
        .iter()
        .map(|(k, (t, _))| (k.clone(), t.clone()))
        .collect();
    loop {
        let mut changed = false;
        for (name, (_, calls)) in &direct {
            for callee in calls {
                let Some(theirs) = reaches.get(callee).cloned() else {
                    continue;
                };
                let mine = reaches.get_mut(name).expect("every helper has an entry");
                for (m, t) in mine.iter_mut().zip(theirs) {
                    if t && !*m {
                        *m = true;
                        changed = true;
                    }
                }
            }
        }
        if !changed {
            break;
        }
    }
    methods.reaches = reaches;

    // Pass 2: `forward`, then every helper it reaches.
    let mut errors = Vec::new();
    let mut seen = vec![false; model.fields.len()];
    let mut explained = vec![false; model.fields.len()];
    let mut outside: Vec<Ident> = Vec::new();
    let mut run = |f: &ImplItemFn, errors: &mut Vec<syn::Error>| {
        let mut rewriter = Rewriter::new(model, taps, f, &methods);
        rewriter.redirect = true;
        let mut block = f.block.clone();
        rewriter.visit_block_mut(&mut block);
        for (i, s) in rewriter.seen.iter().enumerate() {
            seen[i] |= *s;
            explained[i] |= rewriter.explained[i];
        }
        outside.append(&mut rewriter.outside);
        let calls = std::mem::take(&mut rewriter.calls);
        errors.extend(rewriter.cx.into_errors());
        (block, calls)
    };
    let (body, mut queue) = run(forward, &mut errors);
    let mut done = BTreeSet::new();
    let mut bodies = HashMap::new();
    while let Some(name) = queue.pop() {
        if !done.insert(name.clone()) {
            continue;
        }
        let f = methods.followable[&name];
        let (block, calls) = run(f, &mut errors);
        bodies.insert(name, block);
        queue.extend(calls);
    }
    let helpers = item
        .items
        .iter()
        .filter_map(|i| match i {
            ImplItem::Fn(f) => bodies
                .remove(&f.sig.ident.to_string())
                .map(|b| tapped_helper(f, b, taps, backend)),
            _ => None,
        })
        .collect();

    let unseen: Vec<&TapFieldSpec> = model
        .fields
        .iter()
        .enumerate()
        .filter(|(i, _)| !seen[*i] && !explained[*i])
        .map(|(_, f)| f)
        .collect();
    if !unseen.is_empty() {
        if outside.is_empty() {
            for field in unseen {
                errors.push(syn::Error::new_spanned(
                    &forward.sig.ident,
                    never_called(field),
                ));
            }
        } else {
            let names: Vec<String> = unseen.iter().map(|f| format!("`{}`", f.ident)).collect();
            for call in &outside {
                errors.push(syn::Error::new(
                    call.span(),
                    format!(
                        "`forward` never reaches {} where framer can see it, and framer cannot \
                         follow `self.{call}(..)`: `{call}` is not a method of this \
                         `#[framer_forward]` `impl` block (it is in another `impl` block or a \
                         trait). If it calls a student, move `fn {call}(&self, ..)` into this \
                         block (a trait method: call the students from a method of this block)",
                        names.join(", ")
                    ),
                ));
            }
        }
    }
    let mut cx = Ctxt::new();
    for e in errors {
        cx.push(e);
    }
    cx.finish().map(|()| Rewritten { body, helpers })
}

/// `fn __framer_tapped_<name>(&self, taps, ..)`: a helper's copy that records the taps.
fn tapped_helper(f: &ImplItemFn, body: syn::Block, taps: &Ident, backend: &Type) -> TokenStream {
    let p = quote!(::framer::__private);
    let name = tapped_name(&f.sig.ident);
    let cfgs = f
        .attrs
        .iter()
        .filter(|a| a.path().is_ident("cfg") || a.path().is_ident("cfg_attr"));
    let generics = &f.sig.generics;
    let where_clause = &f.sig.generics.where_clause;
    let unsafety = &f.sig.unsafety;
    let mut inputs = f.sig.inputs.iter();
    let receiver = inputs.next();
    let output = &f.sig.output;
    quote! {
        #(#cfgs)*
        #[doc(hidden)]
        #[allow(clippy::all, unused_mut, unused_variables)]
        #unsafety fn #name #generics (#receiver, #taps: &mut #p::Taps<#backend>, #(#inputs),*) #output #where_clause
        #body
    }
}

fn never_called(field: &TapFieldSpec) -> String {
    let role = match field.role {
        Role::Student => "student",
        Role::Teacher => "teacher",
    };
    let name = &field.ident;
    match field.kind {
        FieldKind::Single => format!(
            "`forward` never calls the {role} `{name}`: framer records `self.{name}.forward(..)` \
             written in the body of `forward` or of a method of this `impl` block that it calls"
        ),
        FieldKind::Collection { .. } => format!(
            "`forward` never calls the {role}s `{name}`: framer records `x.forward(..)` in \
             `for x in &self.{name}` loops (or `.iter()`, with `zip`, `enumerate`, `rev`, `skip`, \
             `take`, `step_by`, `chain`) and `self.{name}[i].forward(..)`, written in the body \
             of `forward` or of a method of this `impl` block that it calls"
        ),
    }
}

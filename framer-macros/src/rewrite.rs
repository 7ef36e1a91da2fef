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

use proc_macro2::{Span, TokenStream};
use quote::{format_ident, quote, quote_spanned};
use syn::visit_mut::{self, VisitMut};
use syn::{Expr, FnArg, Ident, ImplItem, ImplItemFn, ItemImpl, Member, Type};

use crate::chain::{self, Binding};
use crate::ctxt::Ctxt;
use crate::model::{FieldKind, Model, Readout, Role, TapFieldSpec};

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

/// Where a recorded call's tap name and index come from.
enum Target {
    /// `self.field.forward(..)`.
    Single(usize),
    /// `self.field[i].forward(..)`.
    Indexed(usize, Expr),
    /// `x.forward(..)` for a loop element `x`.
    Element {
        fields: Vec<usize>,
        tag: Ident,
        named: bool,
    },
}

impl Target {
    fn fields(&self) -> Vec<usize> {
        match self {
            Target::Single(f) | Target::Indexed(f, _) => vec![*f],
            Target::Element { fields, .. } => fields.clone(),
        }
    }
}

struct Rewriter<'a> {
    model: &'a Model,
    taps: &'a Ident,
    self_span: Span,
    methods: &'a Methods<'a>,
    /// Pass 2: redirect calls of helpers that reach students to their tapped copies.
    redirect: bool,
    loops: Vec<Binding>,
    /// Fields whose calls this body records.
    seen: Vec<bool>,
    /// Fields an error already reported here concerns.
    explained: Vec<bool>,
    /// Helpers of the block this body calls (pass 1: all; pass 2: those redirected).
    calls: Vec<String>,
    /// `self.m(..)` calls of methods that are not in the block.
    outside: Vec<Ident>,
    closures: usize,
    cx: Ctxt,
    counter: usize,
}

/// `self.name` → `name`.
fn self_field(expr: &Expr) -> Option<&Ident> {
    match strip(expr) {
        Expr::Field(f) => match (strip(&f.base), &f.member) {
            (Expr::Path(p), Member::Named(name))
                if p.qself.is_none() && p.path.is_ident("self") =>
            {
                Some(name)
            }
            _ => None,
        },
        _ => None,
    }
}

fn is_self(expr: &Expr) -> bool {
    matches!(strip(expr), Expr::Path(p) if p.qself.is_none() && p.path.is_ident("self"))
}

/// The expression naming a local variable.
fn path_expr(ident: Ident) -> Expr {
    Expr::Path(syn::ExprPath {
        attrs: Vec::new(),
        qself: None,
        path: ident.into(),
    })
}

fn strip_mut(expr: &mut Expr) -> &mut Expr {
    match expr {
        Expr::Paren(p) => strip_mut(&mut p.expr),
        Expr::Group(g) => strip_mut(&mut g.expr),
        e => e,
    }
}

fn strip(expr: &Expr) -> &Expr {
    match expr {
        Expr::Paren(p) => strip(&p.expr),
        Expr::Group(g) => strip(&g.expr),
        e => e,
    }
}

impl<'a> Rewriter<'a> {
    fn new(model: &'a Model, taps: &'a Ident, f: &ImplItemFn, methods: &'a Methods<'a>) -> Self {
        let self_span = match f.sig.inputs.first() {
            Some(FnArg::Receiver(r)) => r.self_token.span,
            _ => f.sig.ident.span(),
        };
        Self {
            model,
            taps,
            self_span,
            methods,
            redirect: false,
            loops: Vec::new(),
            seen: vec![false; model.fields.len()],
            explained: vec![false; model.fields.len()],
            calls: Vec::new(),
            outside: Vec::new(),
            closures: 0,
            cx: Ctxt::new(),
            counter: 0,
        }
    }

    fn field_position(&self, name: &Ident, collection: bool) -> Option<usize> {
        self.model.fields.iter().position(|f| {
            f.ident == *name && matches!(f.kind, FieldKind::Collection { .. }) == collection
        })
    }

    fn explain(&mut self, fields: &[usize]) {
        for f in fields {
            self.explained[*f] = true;
        }
    }

    fn unsupported(&mut self, u: chain::Unsupported) {
        self.explain(&u.fields);
        self.cx.push(u.error);
    }

    fn rewrite_loop(&mut self, fl: &mut syn::ExprForLoop, node: chain::Node) {
        let item = match node.item(self.model) {
            Ok(item) => item,
            Err(u) => {
                self.unsupported(u);
                self.visit_block_mut(&mut fl.body);
                return;
            }
        };
        let named = item.named();
        let mut bindings = Vec::new();
        let pat = chain::bind(&fl.pat, &item, named, &mut self.counter, &mut bindings);
        let pat = match pat {
            Ok(pat) => pat,
            Err(e) => {
                self.explain(&node.fields());
                self.cx.push(e);
                self.visit_block_mut(&mut fl.body);
                return;
            }
        };
        let fields = node.fields();
        let model = self.model;
        let expr = chain::expand(node, named, model, &mut |e| self.visit_expr_mut(e));
        match syn::parse2::<Expr>(expr) {
            Ok(expr) => {
                *fl.expr = expr;
                *fl.pat = pat;
            }
            Err(e) => {
                self.explain(&fields);
                self.cx.error_spanned_by(
                    &fl.pat,
                    format!("framer could not instrument this loop: {e}"),
                );
                return;
            }
        }
        let pushed = bindings.len();
        self.loops.extend(bindings);
        self.visit_block_mut(&mut fl.body);
        self.loops.truncate(self.loops.len() - pushed);
    }

    /// Which tap a `.forward(..)` receiver is, if any.
    fn call_target(&self, receiver: &Expr) -> Option<Target> {
        let receiver = strip(receiver);
        if let Some(name) = self_field(receiver) {
            return self.field_position(name, false).map(Target::Single);
        }
        if let Expr::Index(ix) = receiver {
            let f = self_field(&ix.expr).and_then(|name| self.field_position(name, true))?;
            return Some(Target::Indexed(f, (*ix.index).clone()));
        }
        if let Expr::Path(p) = receiver
            && p.qself.is_none()
            && let Some(ident) = p.path.get_ident()
        {
            let binding = self.loops.iter().rev().find(|b| b.element == *ident)?;
            return Some(Target::Element {
                fields: binding.fields.clone(),
                tag: binding.tag.clone(),
                named: binding.named,
            });
        }
        None
    }

    fn wrap_call(&mut self, call: &mut Expr) {
        let Expr::MethodCall(m) = call else { return };
        let Some(target) = self.call_target(&m.receiver) else {
            return;
        };
        let fields = target.fields();
        if self.closures > 0 {
            self.explain(&fields);
            let receiver = &m.receiver;
            self.cx.error_at(
                m.method.span(),
                format!(
                    "framer does not record students called inside a closure: call \
                     `{}.forward(..)` in the body of `forward` (or of a method of this `impl` \
                     block), e.g. in a `for` loop instead of `map`, `fold` or `for_each`",
                    quote!(#receiver).to_string().replace(' ', "")
                ),
            );
            return;
        }
        for f in &fields {
            self.seen[*f] = true;
        }
        let model = self.model;
        let field = &model.fields[fields[0]];
        let span = Span::call_site().located_at(m.method.span());
        let p = quote_spanned!(span=> ::framer::__private);
        let taps = self.taps;
        let output = Ident::new("__framer_o", span);

        // `self.f[i]`: evaluate the index once, before the call.
        let mut prelude = TokenStream::new();
        let (name, index_value): (TokenStream, Option<TokenStream>) = match target {
            Target::Single(_) => {
                let name = field.ident.to_string();
                (quote!(#name), None)
            }
            Target::Indexed(_, index_expr) => {
                let idx = Ident::new("__framer_idx", span);
                prelude = quote_spanned!(span=> let #idx: usize = #index_expr;);
                if let Expr::Index(ix) = strip_mut(&mut m.receiver) {
                    *ix.index = path_expr(idx.clone());
                }
                let name = field.ident.to_string();
                (quote!(#name), Some(quote!(#idx)))
            }
            Target::Element {
                tag, named: false, ..
            } => {
                let name = field.ident.to_string();
                (quote!(#name), Some(quote!(#tag)))
            }
            Target::Element {
                tag, named: true, ..
            } => (quote!(#tag.0), Some(quote!(#tag.1))),
        };
        let index_option = match &index_value {
            Some(i) => quote!(#p::Some(#i)),
            None => quote!(#p::None),
        };
        let selected = match &field.element {
            Some(n) => quote!(#output.#n),
            None => quote!(#output),
        };
        let record = match (field.role, &model.readout) {
            (Role::Teacher, _) => quote_spanned! {span=>
                #p::record_teacher(&mut *#taps, #name, #index_option, &#selected);
            },
            (Role::Student, Readout::Method { method, args }) => {
                let self_token = syn::token::SelfValue {
                    span: self.self_span,
                };
                let args = args.iter().map(|a| {
                    let mut local = a.clone();
                    local.set_span(a.span().resolved_at(self.self_span));
                    quote!(#p::Clone::clone(&#local))
                });
                quote_spanned! {span=>
                    #p::record_student(
                        &mut *#taps,
                        #name,
                        #index_option,
                        &#self_token.#method(#p::Clone::clone(&#selected), #(#args),*),
                    );
                }
            }
            (Role::Student, _) => quote_spanned! {span=>
                #p::record_student(&mut *#taps, #name, #index_option, &#selected);
            },
        };
        let selections: Vec<(String, &Vec<usize>)> = fields
            .iter()
            .filter_map(|f| {
                let f = &model.fields[*f];
                f.indices.as_ref().map(|l| (f.ident.to_string(), l))
            })
            .collect();
        let record = match (&index_value, selections.as_slice()) {
            (_, []) | (None, _) => record,
            (Some(i), [(_, list)]) if fields.len() == 1 => quote_spanned! {span=>
                if [#(#list),*].contains(&#i) { #record }
            },
            (Some(i), selections) => {
                let arms = selections.iter().map(
                    |(field, list)| quote_spanned!(span=> #field => [#(#list),*].contains(&#i),),
                );
                quote_spanned! {span=>
                    if match #name { #(#arms)* _ => true } { #record }
                }
            }
        };
        let original = &*call;
        let wrapped = syn::parse2::<Expr>(quote_spanned! {span=>
            {
                #prelude
                let #output = #original;
                #record
                #output
            }
        });
        match wrapped {
            Ok(wrapped) => *call = wrapped,
            Err(e) => self.cx.error_spanned_by(
                &*call,
                format!("framer could not instrument this call: {e}"),
            ),
        }
    }

    /// `self.m(..)`: a helper of the block (followed), or a method elsewhere (remembered).
    fn self_call(&mut self, m: &mut syn::ExprMethodCall) {
        for arg in &mut m.args {
            self.visit_expr_mut(arg);
        }
        let name = m.method.to_string();
        if !self.methods.followable.contains_key(&name) {
            let readout =
                matches!(&self.model.readout, Readout::Method { method, .. } if *method == name);
            if !self.methods.all.contains(&name) && !readout {
                self.outside.push(m.method.clone());
            }
            return;
        }
        if !self.redirect {
            self.calls.push(name);
            return;
        }
        let Some(reached) = self.methods.reaches(&name) else {
            return;
        };
        let fields: Vec<usize> = (0..reached.len()).filter(|i| reached[*i]).collect();
        if self.closures > 0 {
            self.explain(&fields);
            self.cx.error_at(
                m.method.span(),
                format!(
                    "framer does not record students called inside a closure, and \
                     `self.{name}(..)` calls students: call it in the body of `forward` (or of a \
                     method of this `impl` block), e.g. in a `for` loop instead of `map`, `fold` \
                     or `for_each`"
                ),
            );
            return;
        }
        for f in fields {
            self.seen[f] = true;
        }
        self.calls.push(name);
        let mut tapped = tapped_name(&m.method);
        tapped.set_span(m.method.span());
        m.method = tapped;
        let taps = self.taps;
        m.args.insert(0, syn::parse_quote!(&mut *#taps));
    }
}

impl VisitMut for Rewriter<'_> {
    fn visit_expr_mut(&mut self, expr: &mut Expr) {
        match expr {
            Expr::ForLoop(fl) => match chain::parse(&fl.expr, self.model) {
                Ok(Some(node)) => {
                    self.rewrite_loop(fl, node);
                    return;
                }
                Ok(None) => {}
                Err(u) => {
                    self.unsupported(u);
                    self.visit_block_mut(&mut fl.body);
                    return;
                }
            },
            Expr::Closure(_) | Expr::Async(_) => {
                self.closures += 1;
                visit_mut::visit_expr_mut(self, expr);
                self.closures -= 1;
                return;
            }
            Expr::MethodCall(m) if m.method == "forward" => {
                visit_mut::visit_expr_method_call_mut(self, m);
                self.wrap_call(expr);
                return;
            }
            Expr::MethodCall(m) if is_self(&m.receiver) => {
                self.self_call(m);
                return;
            }
            Expr::MethodCall(m) if chain::is_inert(m, self.model) => {
                for arg in &mut m.args {
                    self.visit_expr_mut(arg);
                }
                return;
            }
            Expr::MethodCall(_) => match chain::parse(expr, self.model) {
                Ok(None) => {}
                Ok(Some(node)) => {
                    let fields = node.fields();
                    self.explain(&fields);
                    let names: Vec<String> = fields
                        .iter()
                        .map(|f| format!("`{}`", self.model.fields[*f].ident))
                        .collect();
                    self.cx.error_spanned_by(
                        &*expr,
                        format!(
                            "framer follows the elements of {} only through the iterator of a \
                             `for` loop: write this chain in the loop's header \
                             (`for block in <chain> {{ .. block.forward(..) .. }}`)",
                            names.join(", ")
                        ),
                    );
                    return;
                }
                Err(u) => {
                    self.unsupported(u);
                    if let Expr::MethodCall(m) = expr {
                        for arg in &mut m.args {
                            self.visit_expr_mut(arg);
                        }
                    }
                    return;
                }
            },
            _ => {}
        }
        visit_mut::visit_expr_mut(self, expr);
    }
}

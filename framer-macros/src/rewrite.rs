//! The copy of `forward`'s body in which the marked fields' calls record their outputs.
//!
//! Recognised call sites:
//! - `self.field.forward(..)` (a single module);
//! - `self.field[i].forward(..)` (an element of a `Vec`/array);
//! - `x.forward(..)` where `x` is bound by `for x in &self.field`, `for x in self.field.iter()`
//!   or `for (i, x) in self.field.iter().enumerate()`. The loop gets a hidden counter
//!   (`zip(0usize..)`) that names the tap `field.{counter}`.

use proc_macro2::{Span, TokenStream};
use quote::{format_ident, quote, quote_spanned};
use syn::parse::Parser;
use syn::visit_mut::{self, VisitMut};
use syn::{Expr, FnArg, Ident, ImplItemFn, Member, Pat};

use crate::ctxt::Ctxt;
use crate::model::{FieldKind, Model, Readout, Role, TapFieldSpec};

/// Rewrites a copy of `forward`'s body. Errors: unsupported uses of a tapped collection and
/// marked fields that the body never calls.
pub(crate) fn rewrite_body(
    model: &Model,
    forward: &ImplItemFn,
    taps: &Ident,
) -> syn::Result<syn::Block> {
    let self_span = match forward.sig.inputs.first() {
        Some(FnArg::Receiver(r)) => r.self_token.span,
        _ => forward.sig.ident.span(),
    };
    let mut rewriter = Rewriter {
        model,
        taps,
        self_span,
        loops: Vec::new(),
        seen: vec![false; model.fields.len()],
        cx: Ctxt::new(),
        counter: 0,
    };
    let mut block = forward.block.clone();
    rewriter.visit_block_mut(&mut block);
    let Rewriter { seen, mut cx, .. } = rewriter;
    for (field, seen) in model.fields.iter().zip(seen) {
        if !seen {
            cx.error_spanned_by(&forward.sig.ident, never_called(field));
        }
    }
    cx.finish().map(|()| block)
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
             written in the body of `forward`"
        ),
        FieldKind::Collection { .. } => format!(
            "`forward` never calls the {role}s `{name}`: framer records `x.forward(..)` in \
             `for x in &self.{name}` (or `.iter()`, `.iter().enumerate()`) loops and \
             `self.{name}[i].forward(..)` written in the body of `forward`"
        ),
    }
}

struct LoopBinding {
    element: Ident,
    field: usize,
    index: Ident,
}

struct Rewriter<'a> {
    model: &'a Model,
    taps: &'a Ident,
    self_span: Span,
    loops: Vec<LoopBinding>,
    seen: Vec<bool>,
    cx: Ctxt,
    counter: usize,
}

/// `self.name` → `name`.
fn self_field(expr: &Expr) -> Option<&Ident> {
    match expr {
        Expr::Paren(p) => self_field(&p.expr),
        Expr::Group(g) => self_field(&g.expr),
        Expr::Field(f) => match (&*f.base, &f.member) {
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

fn is_call<'e>(expr: &'e Expr, method: &str) -> Option<&'e Expr> {
    match expr {
        Expr::MethodCall(m) if m.method == method && m.args.is_empty() && m.turbofish.is_none() => {
            Some(&m.receiver)
        }
        _ => None,
    }
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

/// The element binding of a loop pattern: `x` or, for `.enumerate()`, the `x` of `(i, x)`.
fn element_binding(pat: &Pat, enumerate: bool) -> Option<Ident> {
    let pat = match (pat, enumerate) {
        (Pat::Tuple(t), true) if t.elems.len() == 2 => t.elems.iter().nth(1)?,
        (_, true) => return None,
        (p, false) => p,
    };
    match pat {
        Pat::Ident(i) if i.subpat.is_none() => Some(i.ident.clone()),
        _ => None,
    }
}

impl Rewriter<'_> {
    fn collection_field(&self, name: &Ident) -> Option<usize> {
        self.model
            .fields
            .iter()
            .position(|f| f.ident == *name && matches!(f.kind, FieldKind::Collection { .. }))
    }

    fn single_field(&self, name: &Ident) -> Option<usize> {
        self.model
            .fields
            .iter()
            .position(|f| f.ident == *name && f.kind == FieldKind::Single)
    }

    /// `&self.f`, `self.f.iter()` → `(f, false)`; `self.f.iter().enumerate()` → `(f, true)`.
    fn loop_source(&self, expr: &Expr) -> Option<(usize, bool)> {
        let expr = strip(expr);
        if let Expr::Reference(r) = expr
            && r.mutability.is_none()
        {
            return self_field(&r.expr)
                .and_then(|f| self.collection_field(f))
                .map(|f| (f, false));
        }
        if let Some(receiver) = is_call(expr, "iter") {
            return self_field(receiver)
                .and_then(|f| self.collection_field(f))
                .map(|f| (f, false));
        }
        let iter = is_call(expr, "enumerate")?;
        let receiver = is_call(strip(iter), "iter")?;
        self_field(receiver)
            .and_then(|f| self.collection_field(f))
            .map(|f| (f, true))
    }

    /// For `self.f.iter().a().b()`: the tapped collection `f` and the adapters `[a, b]`.
    fn iterator_chain<'e>(&self, expr: &'e Expr) -> Option<(usize, Vec<&'e Ident>)> {
        let mut adapters = Vec::new();
        let mut current = strip(expr);
        loop {
            match current {
                Expr::MethodCall(m) => {
                    if matches!(
                        m.method.to_string().as_str(),
                        "iter" | "into_iter" | "iter_mut"
                    ) {
                        let field = self_field(&m.receiver)
                            .or_else(|| match strip(&m.receiver) {
                                Expr::Reference(r) => self_field(&r.expr),
                                _ => None,
                            })
                            .and_then(|f| self.collection_field(f));
                        if let Some(field) = field {
                            adapters.reverse();
                            return Some((field, adapters));
                        }
                    }
                    adapters.push(&m.method);
                    current = strip(&m.receiver);
                }
                _ => return None,
            }
        }
    }

    fn rewrite_loop(&mut self, fl: &mut syn::ExprForLoop, field: usize, enumerate: bool) {
        let index = format_ident!("__framer_i{}", self.counter);
        self.counter += 1;
        let element = element_binding(&fl.pat, enumerate);
        let source = &fl.expr;
        let zipped = syn::parse2::<Expr>(quote! {
            ::framer::__private::Iterator::zip(::framer::__private::IntoIterator::into_iter(#source), 0usize..)
        });
        let pat = &fl.pat;
        let pat = Pat::parse_single.parse2(quote!((#pat, #index)));
        match (zipped, pat) {
            (Ok(zipped), Ok(pat)) => {
                *fl.expr = zipped;
                *fl.pat = pat;
            }
            (Err(e), _) | (_, Err(e)) => {
                self.cx.error_spanned_by(
                    &fl.pat,
                    format!("framer could not instrument this loop: {e}"),
                );
                return;
            }
        }
        let pushed = element.is_some();
        if let Some(element) = element {
            self.loops.push(LoopBinding {
                element,
                field,
                index,
            });
        }
        self.visit_block_mut(&mut fl.body);
        if pushed {
            self.loops.pop();
        }
    }

    /// Which tap a `.forward(..)` receiver is, if any: `(field, index expression)`.
    fn call_target(&self, receiver: &Expr) -> Option<(usize, Option<Expr>)> {
        let receiver = strip(receiver);
        if let Some(name) = self_field(receiver) {
            return self.single_field(name).map(|f| (f, None));
        }
        if let Expr::Index(ix) = receiver {
            let f = self_field(&ix.expr).and_then(|name| self.collection_field(name))?;
            return Some((f, Some((*ix.index).clone())));
        }
        if let Expr::Path(p) = receiver
            && p.qself.is_none()
            && let Some(ident) = p.path.get_ident()
        {
            let binding = self.loops.iter().rev().find(|b| b.element == *ident)?;
            return Some((binding.field, Some(path_expr(binding.index.clone()))));
        }
        None
    }

    fn wrap_call(&mut self, call: &mut Expr) {
        let Expr::MethodCall(m) = call else { return };
        let Some((field_index, index)) = self.call_target(&m.receiver) else {
            return;
        };
        self.seen[field_index] = true;
        let model = self.model;
        let field = &model.fields[field_index];
        let span = Span::call_site().located_at(m.method.span());
        let p = quote_spanned!(span=> ::framer::__private);
        let taps = self.taps;
        let output = Ident::new("__framer_o", span);

        // `self.f[i]`: evaluate the index once, before the call.
        let mut prelude = TokenStream::new();
        let index_value: Option<TokenStream> = match (index, strip(&m.receiver)) {
            (Some(index_expr), Expr::Index(_)) => {
                let idx = Ident::new("__framer_idx", span);
                prelude = quote_spanned!(span=> let #idx: usize = #index_expr;);
                if let Expr::Index(ix) = strip_mut(&mut m.receiver) {
                    *ix.index = path_expr(idx.clone());
                }
                Some(quote!(#idx))
            }
            (Some(index_expr), _) => Some(quote!(#index_expr)),
            (None, _) => None,
        };
        let index_option = match &index_value {
            Some(i) => quote!(#p::Some(#i)),
            None => quote!(#p::None),
        };
        let name = field.ident.to_string();
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
        let record = match (&field.indices, &index_value) {
            (Some(list), Some(i)) => quote_spanned! {span=>
                if [#(#list),*].contains(&#i) { #record }
            },
            _ => record,
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
}

impl VisitMut for Rewriter<'_> {
    fn visit_expr_mut(&mut self, expr: &mut Expr) {
        match expr {
            Expr::ForLoop(fl) => {
                if let Some((field, enumerate)) = self.loop_source(&fl.expr) {
                    self.rewrite_loop(fl, field, enumerate);
                    return;
                }
            }
            Expr::MethodCall(m) if m.method == "forward" => {
                visit_mut::visit_expr_method_call_mut(self, m);
                self.wrap_call(expr);
                return;
            }
            Expr::MethodCall(_) => {
                let chain = self.iterator_chain(expr).map(|(field, adapters)| {
                    let culprit = adapters
                        .iter()
                        .find(|a| **a != "enumerate")
                        .or(adapters.last())
                        .copied();
                    (field, culprit.cloned())
                });
                if let (Some((field, culprit)), Expr::MethodCall(m)) = (chain, &mut *expr) {
                    let name = &self.model.fields[field].ident;
                    let message = format!(
                        "framer cannot tell which element of `{name}` runs through this iterator \
                         chain; write the loop as `for x in &self.{name}`, \
                         `for x in self.{name}.iter()` or `for (i, x) in self.{name}.iter().enumerate()`"
                    );
                    match culprit {
                        Some(method) => self.cx.error_spanned_by(method, message),
                        None => self.cx.error_at(m.method.span(), message),
                    }
                    for arg in &mut m.args {
                        self.visit_expr_mut(arg);
                    }
                    return;
                }
            }
            _ => {}
        }
        visit_mut::visit_expr_mut(self, expr);
    }
}

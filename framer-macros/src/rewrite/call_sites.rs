//! The rewriting of one body: [`Rewriter`] visits it, wraps each call that reaches a student in
//! the taps collector (a single module, an element, a loop binding over a student collection)
//! and, in the second pass, redirects calls of helpers that reach students to their tapped
//! copies. What the visitor recognises is listed in [the module docs](super).

use proc_macro2::{Span, TokenStream};
use quote::{quote, quote_spanned};
use syn::visit_mut::{self, VisitMut};
use syn::{Expr, FnArg, Ident, ImplItemFn, Member};

use super::{Methods, tapped_name};
use crate::chain::{self, Binding};
use crate::ctxt::Ctxt;
use crate::model::{FieldKind, Model, Readout, Role};

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

pub(super) struct Rewriter<'a> {
    pub(super) model: &'a Model,
    pub(super) taps: &'a Ident,
    pub(super) self_span: Span,
    pub(super) methods: &'a Methods<'a>,
    /// Pass 2: redirect calls of helpers that reach students to their tapped copies.
    pub(super) redirect: bool,
    pub(super) loops: Vec<Binding>,
    /// Fields whose calls this body records.
    pub(super) seen: Vec<bool>,
    /// Fields an error already reported here concerns.
    pub(super) explained: Vec<bool>,
    /// Helpers of the block this body calls (pass 1: all; pass 2: those redirected).
    pub(super) calls: Vec<String>,
    /// `self.m(..)` calls of methods that are not in the block.
    pub(super) outside: Vec<Ident>,
    pub(super) closures: usize,
    pub(super) cx: Ctxt,
    pub(super) counter: usize,
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
    pub(super) fn new(model: &'a Model, taps: &'a Ident, f: &ImplItemFn, methods: &'a Methods<'a>) -> Self {
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

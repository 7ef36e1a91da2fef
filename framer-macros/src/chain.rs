//! Iterator chains over student collections in `for` loops.
//!
//! A loop such as `for ((up, block), skip) in self.ups.iter().zip(&self.blocks).zip(skips)` is
//! read into a [`Node`] tree. Its code is regenerated with each student collection enumerated
//! at its source (`self.ups.iter()` → `enumerate(self.ups.iter())`), so that every element
//! travels through the adapters together with its index: the recorded index is exact whatever
//! `rev`, `skip(k)`, `take(n)`, `step_by(n)` or `chain` do at run time. The loop pattern is
//! rewritten to match ([`bind`]): `up` becomes `(__framer_i0, up)`. When a `chain` joins two
//! different collections, every source carries its field name as well, `(("ups", i), up)`.

use proc_macro2::{Span, TokenStream};
use quote::{ToTokens, format_ident, quote};
use syn::parse::Parser;
use syn::{AngleBracketedGenericArguments, Expr, ExprMethodCall, Ident, Member, Pat};

use crate::model::{FieldKind, Model};

/// Adapters that keep each element as it is.
const KEEP: &[&str] = &["rev", "skip", "take", "step_by", "into_iter", "fuse"];
/// Methods of a student iterator that yield no element (harmless, left as written).
const INERT: &[&str] = &["len", "is_empty", "count", "size_hint"];

/// An iterator expression of a `for` loop that reaches at least one student collection.
pub(crate) enum Node {
    /// A student collection: `&self.f`, `self.f.iter()` or `(&self.f).into_iter()`.
    Source { field: usize, expr: Expr },
    /// An iterable without students (e.g. the `skips` of `.zip(skips)`), left as written.
    Opaque(Expr),
    /// `inner.rev()`, `.skip(n)`, `.take(n)`, `.step_by(n)`, `.into_iter()`, `.fuse()`.
    Keep { inner: Box<Node>, call: Call },
    /// `inner.enumerate()`.
    Enumerate { inner: Box<Node>, call: Call },
    /// `left.zip(right)`.
    Zip {
        left: Box<Node>,
        right: Box<Node>,
        call: Call,
    },
    /// `left.chain(right)`, both sides student collections.
    Chain {
        left: Box<Node>,
        right: Box<Node>,
        call: Call,
    },
}

/// A method call of the chain without its receiver.
pub(crate) struct Call {
    method: Ident,
    turbofish: Option<AngleBracketedGenericArguments>,
    args: Vec<Expr>,
}

impl Call {
    fn of(m: &ExprMethodCall) -> Self {
        Self {
            method: m.method.clone(),
            turbofish: m.turbofish.clone(),
            args: m.args.iter().cloned().collect(),
        }
    }
}

/// What one item of the chain holds, position by position.
#[derive(Clone, PartialEq, Eq, Debug)]
pub(crate) enum Item {
    /// Something that is not a student (an enumerate counter, the other side of a zip).
    Opaque,
    /// An element of one of these student collections (field positions in the model).
    Student(Vec<usize>),
    /// A pair, from `zip` or `enumerate`.
    Pair(Box<Item>, Box<Item>),
}

impl Item {
    /// Whether some position may hold elements of more than one collection (then each source
    /// carries its field name).
    pub(crate) fn named(&self) -> bool {
        match self {
            Item::Opaque => false,
            Item::Student(fields) => fields.len() > 1,
            Item::Pair(a, b) => a.named() || b.named(),
        }
    }
}

/// A chain framer cannot follow: the error and the student fields it concerns.
pub(crate) struct Unsupported {
    pub error: syn::Error,
    pub fields: Vec<usize>,
}

fn strip(expr: &Expr) -> &Expr {
    match expr {
        Expr::Paren(p) => strip(&p.expr),
        Expr::Group(g) => strip(&g.expr),
        e => e,
    }
}

/// `self.name` → the position of the collection field `name`.
fn self_collection(expr: &Expr, model: &Model) -> Option<usize> {
    let Expr::Field(f) = strip(expr) else {
        return None;
    };
    let (Expr::Path(p), Member::Named(name)) = (strip(&f.base), &f.member) else {
        return None;
    };
    if p.qself.is_some() || !p.path.is_ident("self") {
        return None;
    }
    model
        .fields
        .iter()
        .position(|f| f.ident == *name && matches!(f.kind, FieldKind::Collection { .. }))
}

fn no_args(m: &ExprMethodCall) -> bool {
    m.args.is_empty() && m.turbofish.is_none()
}

/// `&self.f`, `self.f.iter()`, `(&self.f).into_iter()` → `f`.
fn source(expr: &Expr, model: &Model) -> Option<usize> {
    match strip(expr) {
        Expr::Reference(r) if r.mutability.is_none() => self_collection(&r.expr, model),
        Expr::MethodCall(m) if no_args(m) && m.method == "iter" => {
            self_collection(&m.receiver, model)
        }
        Expr::MethodCall(m) if no_args(m) && m.method == "into_iter" => match strip(&m.receiver) {
            Expr::Reference(r) if r.mutability.is_none() => self_collection(&r.expr, model),
            _ => None,
        },
        _ => None,
    }
}

/// Whether `m` is a method such as `len()` called on a student iterator: it yields no element.
pub(crate) fn is_inert(m: &ExprMethodCall, model: &Model) -> bool {
    INERT.iter().any(|i| m.method == i) && matches!(parse(&m.receiver, model), Ok(Some(_)))
}

fn field_names(fields: &[usize], model: &Model) -> String {
    let names: Vec<String> = fields
        .iter()
        .map(|f| format!("`{}`", model.fields[*f].ident))
        .collect();
    names.join(", ")
}

/// Reads an iterator expression. `Ok(None)`: no student collection runs through it.
pub(crate) fn parse(expr: &Expr, model: &Model) -> Result<Option<Node>, Unsupported> {
    if let Some(field) = source(expr, model) {
        return Ok(Some(Node::Source {
            field,
            expr: expr.clone(),
        }));
    }
    let Expr::MethodCall(m) = strip(expr) else {
        return Ok(None);
    };
    let name = m.method.to_string();
    if (name == "zip" || name == "chain") && m.args.len() == 1 {
        let left = parse(&m.receiver, model)?;
        let right = parse(&m.args[0], model)?;
        let call = Call::of(m);
        return match (left, right) {
            (None, None) => Ok(None),
            (left, right) if name == "zip" => Ok(Some(Node::Zip {
                left: Box::new(left.unwrap_or_else(|| Node::Opaque((*m.receiver).clone()))),
                right: Box::new(right.unwrap_or_else(|| Node::Opaque(m.args[0].clone()))),
                call,
            })),
            (Some(left), Some(right)) => Ok(Some(Node::Chain {
                left: Box::new(left),
                right: Box::new(right),
                call,
            })),
            (left, right) => {
                let fields = left.or(right).map(|n| n.fields()).unwrap_or_default();
                Err(Unsupported {
                    error: syn::Error::new(
                        m.method.span(),
                        format!(
                            "`.chain(..)` joins the students {} with an iterator that is not a \
                             student collection: framer follows `chain` only between student \
                             collections (`self.a.iter().chain(&self.b)`); iterate over the \
                             other part in a loop of its own",
                            field_names(&fields, model)
                        ),
                    ),
                    fields,
                })
            }
        };
    }
    let Some(inner) = parse(&m.receiver, model)? else {
        return Ok(None);
    };
    let call = Call::of(m);
    if KEEP.contains(&name.as_str()) && (name != "into_iter" && name != "fuse" || no_args(m)) {
        return Ok(Some(Node::Keep {
            inner: Box::new(inner),
            call,
        }));
    }
    if name == "enumerate" && no_args(m) {
        return Ok(Some(Node::Enumerate {
            inner: Box::new(inner),
            call,
        }));
    }
    let fields = inner.fields();
    let names = field_names(&fields, model);
    let first = &model.fields[fields[0]].ident;
    Err(Unsupported {
        error: syn::Error::new(
            m.method.span(),
            format!(
                "framer cannot follow the elements of {names} through `.{name}(..)`: iterate in a \
                 `for` loop, where framer follows `&self.{first}`, `self.{first}.iter()` and the \
                 adapters `zip`, `enumerate`, `rev`, `skip`, `take`, `step_by` and `chain` (e.g. \
                 `for block in self.{first}.iter().rev()`), and call `block.forward(..)` in its body"
            ),
        ),
        fields,
    })
}

impl Node {
    /// The student fields that run through this chain, in order, without repeats.
    pub(crate) fn fields(&self) -> Vec<usize> {
        let mut out = Vec::new();
        self.collect_fields(&mut out);
        out
    }

    fn collect_fields(&self, out: &mut Vec<usize>) {
        match self {
            Node::Source { field, .. } => {
                if !out.contains(field) {
                    out.push(*field);
                }
            }
            Node::Opaque(_) => {}
            Node::Keep { inner, .. } | Node::Enumerate { inner, .. } => inner.collect_fields(out),
            Node::Zip { left, right, .. } | Node::Chain { left, right, .. } => {
                left.collect_fields(out);
                right.collect_fields(out);
            }
        }
    }

    /// The shape of one item; errors for a `chain` whose sides differ.
    pub(crate) fn item(&self, model: &Model) -> Result<Item, Unsupported> {
        Ok(match self {
            Node::Source { field, .. } => Item::Student(vec![*field]),
            Node::Opaque(_) => Item::Opaque,
            Node::Keep { inner, .. } => inner.item(model)?,
            Node::Enumerate { inner, .. } => {
                Item::Pair(Box::new(Item::Opaque), Box::new(inner.item(model)?))
            }
            Node::Zip { left, right, .. } => {
                Item::Pair(Box::new(left.item(model)?), Box::new(right.item(model)?))
            }
            Node::Chain { left, right, call } => {
                let (a, b) = (left.item(model)?, right.item(model)?);
                merge(&a, &b, model).map_err(|message| Unsupported {
                    error: syn::Error::new(call.method.span(), message),
                    fields: self.fields(),
                })?
            }
        })
    }
}

fn merge(a: &Item, b: &Item, model: &Model) -> Result<Item, String> {
    match (a, b) {
        (Item::Opaque, Item::Opaque) => Ok(Item::Opaque),
        (Item::Student(x), Item::Student(y)) => {
            let mut fields = x.clone();
            for f in y {
                if !fields.contains(f) {
                    fields.push(*f);
                }
            }
            let element = |f: usize| model.fields[f].element.as_ref().map(|i| i.index);
            if let Some(other) = fields.iter().find(|f| element(**f) != element(fields[0])) {
                let describe = |f: usize| match element(f) {
                    Some(n) => format!(
                        "`{}` records element {n} (`tap = .{n}`)",
                        model.fields[f].ident
                    ),
                    None => format!("`{}` records the whole output", model.fields[f].ident),
                };
                return Err(format!(
                    "the chained students record different parts of their outputs: {} and {}; \
                     give them the same `tap`, or iterate over each in a loop of its own",
                    describe(fields[0]),
                    describe(*other)
                ));
            }
            Ok(Item::Student(fields))
        }
        (Item::Pair(a1, b1), Item::Pair(a2, b2)) => Ok(Item::Pair(
            Box::new(merge(a1, a2, model)?),
            Box::new(merge(b1, b2, model)?),
        )),
        _ => Err(
            "`.chain(..)` joins iterators whose items have different shapes: framer follows \
                  `chain` between student collections (`self.a.iter().chain(&self.b)`), zipped \
                  or enumerated alike on both sides"
                .to_string(),
        ),
    }
}

/// The instrumented iterator expression. `visit` rewrites the expressions kept from the user's
/// code (the non-student side of a `zip`, the `n` of `skip(n)`).
pub(crate) fn expand(
    node: Node,
    named: bool,
    model: &Model,
    visit: &mut dyn FnMut(&mut Expr),
) -> TokenStream {
    let p = quote!(::framer::__private);
    let method_call = |receiver: TokenStream, call: Call, visit: &mut dyn FnMut(&mut Expr)| {
        let Call {
            method,
            turbofish,
            mut args,
        } = call;
        for arg in &mut args {
            visit(arg);
        }
        quote!(#receiver.#method #turbofish (#(#args),*))
    };
    match node {
        Node::Source { field, expr } => {
            let enumerated = quote!(#p::Iterator::enumerate(#p::IntoIterator::into_iter(#expr)));
            if named {
                let name = model.fields[field].ident.to_string();
                let (n, x) = (
                    Ident::new("__framer_n", Span::call_site()),
                    Ident::new("__framer_x", Span::call_site()),
                );
                quote!(#p::Iterator::map(#enumerated, |(#n, #x)| ((#name, #n), #x)))
            } else {
                enumerated
            }
        }
        Node::Opaque(mut expr) => {
            visit(&mut expr);
            expr.into_token_stream()
        }
        Node::Keep { inner, call } | Node::Enumerate { inner, call } => {
            let receiver = expand(*inner, named, model, visit);
            method_call(receiver, call, visit)
        }
        Node::Zip { left, right, call } | Node::Chain { left, right, call } => {
            let receiver = expand(*left, named, model, visit);
            let argument = expand(*right, named, model, visit);
            let Call {
                method, turbofish, ..
            } = call;
            quote!(#receiver.#method #turbofish (#argument))
        }
    }
}

/// A loop variable bound to a student element.
pub(crate) struct Binding {
    /// The user's name for the element.
    pub element: Ident,
    /// The generated variable holding its index (`usize`), or `(field name, index)` when named.
    pub tag: Ident,
    /// The collections the element may come from.
    pub fields: Vec<usize>,
    /// Whether `tag` carries the field name.
    pub named: bool,
}

/// Rewrites the loop pattern to the instrumented item, collecting the student bindings.
pub(crate) fn bind(
    pat: &Pat,
    item: &Item,
    named: bool,
    counter: &mut usize,
    bindings: &mut Vec<Binding>,
) -> syn::Result<Pat> {
    let tokens = bind_tokens(pat, item, named, counter, bindings)?;
    Pat::parse_single.parse2(tokens)
}

fn bind_tokens(
    pat: &Pat,
    item: &Item,
    named: bool,
    counter: &mut usize,
    bindings: &mut Vec<Binding>,
) -> syn::Result<TokenStream> {
    if let Pat::Paren(p) = pat {
        return bind_tokens(&p.pat, item, named, counter, bindings);
    }
    match (item, pat) {
        (Item::Opaque, pat) => Ok(pat.to_token_stream()),
        (_, Pat::Wild(_)) => Ok(pat.to_token_stream()),
        (Item::Student(fields), Pat::Ident(i)) if i.subpat.is_none() => {
            let tag = format_ident!("__framer_i{}", *counter);
            *counter += 1;
            bindings.push(Binding {
                element: i.ident.clone(),
                tag: tag.clone(),
                fields: fields.clone(),
                named,
            });
            Ok(quote!((#tag, #pat)))
        }
        (Item::Student(_), pat) => Err(syn::Error::new_spanned(
            pat,
            "bind each student element to a name (`for block in ..`, `for (i, block) in ..`): \
             framer records `block.forward(..)`",
        )),
        (Item::Pair(a, b), Pat::Tuple(t))
            if t.elems.len() == 2 && !t.elems.iter().any(|e| matches!(e, Pat::Rest(_))) =>
        {
            let first = bind_tokens(&t.elems[0], a, named, counter, bindings)?;
            let second = bind_tokens(&t.elems[1], b, named, counter, bindings)?;
            Ok(quote!((#first, #second)))
        }
        (Item::Pair(..), pat) => Err(syn::Error::new_spanned(
            pat,
            "destructure the pairs that `zip` and `enumerate` yield (`for (a, b) in ..`, \
             `for (i, block) in ..`): framer records `block.forward(..)` on a named element",
        )),
    }
}

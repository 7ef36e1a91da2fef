//! The struct as `#[framer]` sees it: syn's input with the `#[framer(..)]` attributes read
//! ([`crate::attr`]), before validation ([`crate::valid`]) turns it into a [`crate::model::Model`].

use syn::{Data, DeriveInput, Fields, Generics, Ident, Type};

use crate::attr::{FieldKeys, container, field_keys};
use crate::ctxt::Ctxt;
use crate::model::Readout;

/// A struct with named fields and its `#[framer]` attributes.
pub(crate) struct Input<'a> {
    /// The syn input, for spans.
    pub original: &'a DeriveInput,
    /// The struct's name.
    pub ident: &'a Ident,
    /// The struct's generics.
    pub generics: &'a Generics,
    /// The container keys; `None` when they could not be read.
    pub readout: Option<Readout>,
    /// The loss defaults of `loss(..)`.
    pub loss: Vec<crate::attr::LossDefault>,
    /// Every named field, with its keys (empty for fields without `#[framer(..)]`).
    pub fields: Vec<Field<'a>>,
}

/// One field and its keys.
pub(crate) struct Field<'a> {
    /// The field's name.
    pub ident: &'a Ident,
    /// The field's type.
    pub ty: &'a Type,
    /// Its `#[framer(..)]` keys.
    pub keys: FieldKeys,
    /// Errors in its keys, reported with the field's other errors so that they come in field
    /// order.
    pub errors: Vec<syn::Error>,
}

pub(crate) const TUPLE_STRUCT: &str = "`#[framer]` needs a struct with named fields: tap names are \
     burn module paths built from field names";
pub(crate) const NOT_A_STRUCT: &str = "`#[framer]` only supports structs with named fields";

impl<'a> Input<'a> {
    /// Reads the struct's attributes. `None` (after reporting) for anything but a struct with
    /// named fields (or a unit struct).
    pub(crate) fn from_syn(input: &'a DeriveInput, cx: &mut Ctxt) -> Option<Self> {
        let fields = match &input.data {
            Data::Struct(s) => match &s.fields {
                Fields::Named(named) => named.named.iter().collect::<Vec<_>>(),
                Fields::Unnamed(_) => {
                    cx.error_spanned_by(&input.ident, TUPLE_STRUCT);
                    return None;
                }
                Fields::Unit => Vec::new(),
            },
            Data::Enum(e) => {
                cx.error_at(e.enum_token.span, NOT_A_STRUCT);
                return None;
            }
            Data::Union(u) => {
                cx.error_at(u.union_token.span, NOT_A_STRUCT);
                return None;
            }
        };
        let (readout, loss) = match container(&input.attrs, cx) {
            Some((readout, loss)) => (Some(readout), loss),
            None => (None, Vec::new()),
        };
        let fields = fields
            .into_iter()
            .filter_map(|f| {
                let mut field_cx = Ctxt::new();
                let keys = field_keys(&f.attrs, &mut field_cx);
                Some(Field {
                    ident: f.ident.as_ref()?,
                    ty: &f.ty,
                    keys,
                    errors: field_cx.into_errors(),
                })
            })
            .collect();
        Some(Self {
            original: input,
            ident: &input.ident,
            generics: &input.generics,
            readout,
            loss,
            fields,
        })
    }
}

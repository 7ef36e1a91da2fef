//! Error accumulation: every mistake in the input is reported, not only the first.
//!
//! As serde_derive's `Ctxt`, a [`Ctxt`] must be consumed ([`Ctxt::finish`],
//! [`Ctxt::into_compile_errors`], [`Ctxt::into_errors`] or, for a trial run whose errors are
//! reported elsewhere, [`Ctxt::discard`]): dropping one unchecked is a bug in the macro and
//! panics, so that no error can be lost silently.

use proc_macro2::TokenStream;
use quote::ToTokens;
use std::fmt::Display;

/// Collects errors; [`Ctxt::finish`] combines them into one `syn::Error`.
pub(crate) struct Ctxt {
    /// `None` once checked.
    errors: Option<Vec<syn::Error>>,
}

impl Ctxt {
    pub(crate) fn new() -> Self {
        Self {
            errors: Some(Vec::new()),
        }
    }

    fn errors_mut(&mut self) -> &mut Vec<syn::Error> {
        self.errors.as_mut().expect("errors of a checked Ctxt")
    }

    /// Records an error at the span of `tokens`.
    pub(crate) fn error_spanned_by<T: ToTokens, M: Display>(&mut self, tokens: T, message: M) {
        self.errors_mut()
            .push(syn::Error::new_spanned(tokens.into_token_stream(), message));
    }

    /// Records an error at `span`.
    pub(crate) fn error_at<M: Display>(&mut self, span: proc_macro2::Span, message: M) {
        self.errors_mut().push(syn::Error::new(span, message));
    }

    /// Records an already built error.
    pub(crate) fn push(&mut self, error: syn::Error) {
        self.errors_mut().push(error);
    }

    pub(crate) fn has_errors(&self) -> bool {
        self.errors.as_ref().is_some_and(|e| !e.is_empty())
    }

    /// The errors, to be reported elsewhere.
    pub(crate) fn into_errors(mut self) -> Vec<syn::Error> {
        self.errors.take().unwrap_or_default()
    }

    /// Drops the errors: for a trial run whose errors another run reports.
    pub(crate) fn discard(mut self) {
        self.errors = None;
    }

    /// All errors as one, or `Ok` when there were none.
    pub(crate) fn finish(self) -> Result<(), syn::Error> {
        let mut errors = self.into_errors().into_iter();
        match errors.next() {
            None => Ok(()),
            Some(mut first) => {
                for e in errors {
                    first.combine(e);
                }
                Err(first)
            }
        }
    }

    /// The errors as `compile_error!` invocations (empty when there are none).
    pub(crate) fn into_compile_errors(self) -> TokenStream {
        match self.finish() {
            Ok(()) => TokenStream::new(),
            Err(e) => e.into_compile_error(),
        }
    }
}

impl Drop for Ctxt {
    fn drop(&mut self) {
        if self.errors.is_some() && !std::thread::panicking() {
            panic!("framer-macros: a Ctxt was dropped without its errors being checked");
        }
    }
}

#[cfg(test)]
mod unit {
    use super::Ctxt;

    #[test]
    #[should_panic(expected = "dropped without its errors being checked")]
    fn an_unchecked_ctxt_panics_on_drop() {
        let mut cx = Ctxt::new();
        cx.error_at(proc_macro2::Span::call_site(), "lost");
    }

    #[test]
    fn a_checked_ctxt_drops_quietly() {
        let mut cx = Ctxt::new();
        cx.error_at(proc_macro2::Span::call_site(), "kept");
        assert_eq!(cx.into_errors().len(), 1);
        Ctxt::new().discard();
        assert!(Ctxt::new().finish().is_ok());
    }
}

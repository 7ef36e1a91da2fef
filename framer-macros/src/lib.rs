//! Attribute macros that retrofit FRAMER taps onto Burn models. Use them through the `framer`
//! crate (`framer::framer`, `framer::framer_forward`); this crate is not meant to be a direct
//! dependency.
//!
#![doc = include_str!("../GRAMMAR.md")]
#![warn(missing_docs)]

use proc_macro::TokenStream;

mod ast;
mod attr;
mod chain;
mod ctxt;
mod derive;
mod forward;
mod model;
mod rewrite;
mod structure;
mod suggest;
mod valid;

#[cfg(test)]
mod tests;

/// Marks a Burn model's FRAMER students, teacher and readout.
///
/// Put it above `#[derive(Module)]` on a struct with named fields and burn's backend type
/// parameter `B`. It implements `framer::FramerModel<B>` for the struct and prepares the
/// information `#[framer_forward]` needs; the struct itself is left as written.
///
/// # Container keys (`#[framer(..)]` on the struct)
/// - `readout = method` / `readout = method(local, ..)`: map each student through
///   `self.method(hidden, local.clone(), ..)`, the `local`s being variables of `forward`.
/// - `heads = conv1x1`: generated 1×1-convolution + resize heads (`framer::FramerHeads`).
///
/// # Field keys (`#[framer(..)]` on a field)
/// - `student`: the module, or every element of a `Vec`/array of modules, is a student.
/// - `indices = [i, ..]`: with `student` on a `Vec`/array, only these elements.
/// - `teacher`: this module's output is the teacher (default: `forward`'s return value).
/// - `tap = .N`: record element `N` of the module's tuple output.
///
/// See the crate documentation for the full grammar and an example.
#[proc_macro_attribute]
pub fn framer(args: TokenStream, item: TokenStream) -> TokenStream {
    structure::expand(args.into(), item.into()).into()
}

/// Generates `forward_with_taps` on the `impl` block that defines `fn forward(&self, ..)`.
///
/// `forward_with_taps` takes the same arguments as `forward` and returns `(output, Taps<B>)`: it
/// runs a copy of `forward`'s body in which the calls of the fields marked by `#[framer]` record
/// their outputs. `forward` is left as written. The block must be in the same module (or function
/// body) as the `#[framer]` struct.
///
/// Recorded calls: `self.field.forward(..)`, `self.field[i].forward(..)`, and `x.forward(..)` for
/// an element `x` of a student collection bound by a `for` loop whose iterator starts at
/// `&self.field`, `self.field.iter()` or `(&self.field).into_iter()` and goes through any of
/// `zip` (either side, nested), `enumerate`, `rev`, `skip`, `take`, `step_by`, `fuse` and `chain`
/// of student collections; each tap carries the element's own index. Calls of methods of the
/// same block that reach a student are followed, however deep.
#[proc_macro_attribute]
pub fn framer_forward(args: TokenStream, item: TokenStream) -> TokenStream {
    forward::expand_attribute(args.into(), item.into()).into()
}

/// Implementation detail of `#[framer]`: reads the field markers after `cfg` stripping.
#[doc(hidden)]
#[proc_macro_derive(FramerDerive, attributes(framer))]
pub fn framer_derive(item: TokenStream) -> TokenStream {
    derive::expand(item.into()).into()
}

/// Implementation detail of `#[framer_forward]`: receives the model's markers and the `impl`.
#[doc(hidden)]
#[proc_macro]
pub fn __framer_forward_expand(input: TokenStream) -> TokenStream {
    forward::expand_bridge(input.into()).into()
}

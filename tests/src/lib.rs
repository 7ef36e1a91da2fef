//! Workspace-level tests of framer's attribute macros, kept in their own crate (like serde's
//! `test_suite`) so that the compile-fail cases build against the published `framer` API:
//!
//! - `tests/retrofit.rs`: models written in the test, retrofitted with `#[framer]` and
//!   `#[framer_forward]` only, checked end to end on `Autodiff<Flex>` (tap names and shapes,
//!   `forward_with_taps` equal to `forward`, a finite FRAMER loss, gradients in the students and
//!   the generated heads);
//! - `tests/ui.rs`: the trybuild compile-fail suite, one folder per kind of mistake in `ui/`.

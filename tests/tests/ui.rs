//! The compile-fail suite of `#[framer]` and `#[framer_forward]`: one folder per kind of mistake
//! under `tests/ui/`, each case with the compiler output it must produce.
//!
//! The `.stderr` files are rustc 1.95's wording: error text and layout change between compiler
//! versions, so the suite runs on that compiler only. Regenerate after a deliberate change with
//! `TRYBUILD=overwrite cargo test -p framer-tests --test ui`, and review the diff.

#[rustversion::attr(
    not(stable(1.95)),
    ignore = "the .stderr files are rustc 1.95's output"
)]
#[test]
fn compile_fail() {
    let t = trybuild::TestCases::new();
    t.compile_fail("ui/*/*.rs");
}

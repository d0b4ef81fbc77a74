//! Compile tests for the macros: `ui/pass` must compile, `ui/fail` must fail
//! with the committed `.stderr`. Regenerate those with `TRYBUILD=overwrite`.

#[test]
fn ui() {
    let t = trybuild::TestCases::new();
    t.pass("tests/ui/pass/*.rs");
    t.compile_fail("tests/ui/fail/*.rs");
}

//! Misuse of the SDK's attributes fails to compile with a message that says
//! what was expected. Each case in `ui/` has its expected `.stderr`.

#[test]
fn macro_misuse_is_explained() {
    let cases = trybuild::TestCases::new();
    cases.compile_fail("tests/ui/*.rs");
}

//! Compile-time checks of `#[hot]` and `#[hot_state]`: each case in `tests/ui` is refused with one error on the
//! offending tokens; each case in `tests/ui-pass` is its twin without the offending part, so a
//! refused case cannot fail for another reason.

#[test]
fn ui() {
    let t = trybuild::TestCases::new();
    t.compile_fail("tests/ui/*.rs");
    t.pass("tests/ui-pass/*.rs");
}

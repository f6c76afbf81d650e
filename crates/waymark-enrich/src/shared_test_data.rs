//! Where the tests find the third-party test data (uap-core, MaxMind test databases) that the project never
//! commits: `$WAYMARK_TESTDATA` if set, else `../shared/testdata` beside the repository.
//!
//! The data is always present on developer machines and in CI, so a missing file fails the test loudly
//! instead of skipping it.

use std::path::PathBuf;

/// The `testdata` directory of the shared data.
pub fn testdata_dir() -> PathBuf {
    match std::env::var_os("WAYMARK_TESTDATA") {
        Some(dir) if !dir.is_empty() => PathBuf::from(dir),
        _ => PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../../../shared/testdata")),
    }
}

/// A file under the `testdata` directory; panics (failing the test) with a clear message when it is absent.
pub fn testdata_file(relative: &str) -> PathBuf {
    let path = testdata_dir().join(relative);
    assert!(
        path.is_file(),
        "test data {} is missing: check out the shared data beside the repository (../shared/testdata) \
         or set WAYMARK_TESTDATA to its testdata directory",
        path.display()
    );
    path
}

//! Running the `portcullis` binary as an operator does, and reading how it ended: shared by the
//! CLI test files (each includes this module; not every file uses every helper).
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

pub(crate) const BIN: &str = env!("CARGO_BIN_EXE_portcullis");

/// The contract policy file of issue #5, verbatim.
pub(crate) fn contract() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../policy/tests/fixtures/contract.yaml")
}

pub(crate) fn run(args: &[&str]) -> anyhow::Result<Output> {
    Ok(Command::new(BIN).args(args).output()?)
}

/// [`run`] in `dir`.
pub(crate) fn run_in(dir: &Path, args: &[&str]) -> anyhow::Result<Output> {
    Ok(Command::new(BIN).current_dir(dir).args(args).output()?)
}

/// stdout on exit 0, or a failure showing both streams.
pub(crate) fn success(out: &Output) -> String {
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "exit {:?}\nstdout:\n{stdout}\nstderr:\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

/// stderr on exit 1.
pub(crate) fn failure(out: &Output) -> String {
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(
        out.status.code(),
        Some(1),
        "stdout:\n{}\nstderr:\n{stderr}",
        String::from_utf8_lossy(&out.stdout)
    );
    stderr
}

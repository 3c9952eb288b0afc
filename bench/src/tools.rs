//! The external tools the comparison needs: check, install (Debian, as
//! root), record their versions, and find or build the portcullis binary.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, Result, bail};

use crate::cmd::find_executable;

/// An executable and the Debian package that provides it.
#[derive(Debug, Clone, Copy)]
pub struct Tool {
    pub bin: &'static str,
    pub package: &'static str,
}

pub const WRK: Tool = Tool {
    bin: "wrk",
    package: "wrk",
};
pub const H2LOAD: Tool = Tool {
    bin: "h2load",
    package: "nghttp2-client",
};
pub const NGHTTP: Tool = Tool {
    bin: "nghttp",
    package: "nghttp2-client",
};
pub const NGINX: Tool = Tool {
    bin: "nginx",
    package: "nginx",
};
pub const HAPROXY: Tool = Tool {
    bin: "haproxy",
    package: "haproxy",
};
pub const OPENSSL: Tool = Tool {
    bin: "openssl",
    package: "openssl",
};
pub const CURL: Tool = Tool {
    bin: "curl",
    package: "curl",
};
/// The cache scenarios' Varnish peer (the package also pulls in the C
/// compiler varnishd compiles its VCL with).
pub const VARNISHD: Tool = Tool {
    bin: "varnishd",
    package: "varnish",
};
pub const TASKSET: Tool = Tool {
    bin: "taskset",
    package: "util-linux",
};

/// Resolved absolute paths of the tools, by executable name.
#[derive(Debug, Default, Clone)]
pub struct Tools {
    paths: BTreeMap<&'static str, PathBuf>,
}

impl Tools {
    pub fn path(&self, tool: Tool) -> Result<&Path> {
        self.paths
            .get(tool.bin)
            .map(PathBuf::as_path)
            .with_context(|| format!("{} was not checked", tool.bin))
    }
}

fn is_root() -> bool {
    rustix::process::geteuid().is_root()
}

fn apt_get(args: &[&str]) -> Result<bool> {
    let status = Command::new("apt-get")
        .args(args)
        .env("DEBIAN_FRONTEND", "noninteractive")
        .status()
        .context("running apt-get")?;
    Ok(status.success())
}

/// Finds every tool; installs missing ones with apt-get when running as
/// root, otherwise fails naming what is missing and how to get it.
pub fn ensure(needed: &[Tool]) -> Result<Tools> {
    let missing = |tools: &[Tool]| -> Vec<Tool> {
        tools
            .iter()
            .copied()
            .filter(|t| find_executable(t.bin).is_none())
            .collect()
    };
    let first_missing = missing(needed);
    if !first_missing.is_empty() {
        let mut packages: Vec<&str> = first_missing.iter().map(|t| t.package).collect();
        packages.sort_unstable();
        packages.dedup();
        let names: Vec<&str> = first_missing.iter().map(|t| t.bin).collect();
        if !is_root() {
            bail!(
                "missing tools: {} (install with: sudo apt-get install -y {})",
                names.join(", "),
                packages.join(" ")
            );
        }
        eprintln!(
            "installing missing tools {} (packages {})",
            names.join(", "),
            packages.join(" ")
        );
        let mut install = vec!["install", "-y", "--no-install-recommends"];
        install.extend(&packages);
        // A fresh machine has no package lists yet: update once and retry.
        let installed = apt_get(&install)? || (apt_get(&["update"])? && apt_get(&install)?);
        if !installed {
            bail!("apt-get install {} failed", packages.join(" "));
        }
    }
    let still = missing(needed);
    if !still.is_empty() {
        let names: Vec<&str> = still.iter().map(|t| t.bin).collect();
        bail!("missing tools after install: {}", names.join(", "));
    }
    let mut tools = Tools::default();
    for t in needed {
        if let Some(p) = find_executable(t.bin) {
            tools.paths.insert(t.bin, p);
        }
    }
    Ok(tools)
}

/// First line of whatever a `--version`-style command prints, on stdout or
/// stderr (nginx prints to stderr; wrk prints usage after its version).
pub fn version_of(bin: &Path, args: &[&str]) -> String {
    let Ok(out) = Command::new(bin).args(args).output() else {
        return "unknown".to_owned();
    };
    let text = [out.stdout, out.stderr]
        .iter()
        .map(|b| String::from_utf8_lossy(b).into_owned())
        .collect::<Vec<_>>()
        .join("\n");
    text.lines()
        .map(str::trim)
        .find(|l| !l.is_empty())
        .unwrap_or("unknown")
        .to_owned()
}

/// The default binary: `$CARGO_TARGET_DIR/release/portcullis` when that is
/// set (so a `cargo build` we run lands where we look), else
/// `target/release/portcullis` under the workspace root.
pub fn default_portcullis(root: &Path) -> PathBuf {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .map(|t| if t.is_relative() { root.join(t) } else { t })
        .unwrap_or_else(|| root.join("target"));
    target.join("release").join("portcullis")
}

/// The portcullis binary under test: `arg` (the `--portcullis` option) or the workspace's
/// release build, built with cargo when missing (see [`ensure_portcullis`]).
pub fn portcullis_under_test(arg: Option<&Path>, root: &Path) -> Result<PathBuf> {
    let path = arg.map_or_else(|| default_portcullis(root), Path::to_path_buf);
    ensure_portcullis(&path, root)
}

/// Returns a runnable portcullis binary at `path`, building it with cargo
/// when it is missing. A path under a `debug` directory gets a debug build
/// (the CI smoke), anything else a release build.
pub fn ensure_portcullis(path: &Path, root: &Path) -> Result<PathBuf> {
    let path = if path.is_relative() {
        root.join(path)
    } else {
        path.to_owned()
    };
    if path.is_file() {
        return Ok(path);
    }
    let profile_dir = path.parent().and_then(Path::file_name);
    let debug = match profile_dir.and_then(|d| d.to_str()) {
        Some("debug") => true,
        Some("release") => false,
        // Not a cargo output path: nothing we could build would land there.
        _ => bail!("no portcullis binary at {}", path.display()),
    };
    let mut cmd = Command::new(std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into()));
    cmd.current_dir(root)
        .args(["build", "-p", "portcullis", "--bin", "portcullis"]);
    if !debug {
        cmd.arg("--release");
    }
    // Build into the directory the path names, whatever CARGO_TARGET_DIR says.
    if let Some(target_dir) = path.parent().and_then(Path::parent) {
        cmd.env("CARGO_TARGET_DIR", target_dir);
    }
    eprintln!("{} is missing; building it: {cmd:?}", path.display());
    let status = cmd.status().context("running cargo build")?;
    if !status.success() {
        bail!("cargo build -p portcullis failed ({status})");
    }
    if !path.is_file() {
        bail!(
            "built portcullis, but {} still does not exist",
            path.display()
        );
    }
    Ok(path)
}

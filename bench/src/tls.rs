//! The one certificate all three proxies serve in the TLS scenarios: made
//! per run with openssl in the run directory. A throwaway CA (ECDSA P-256)
//! signs an ECDSA P-256 leaf for the bench host name; the checks trust that
//! CA (`curl --cacert`).

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use anyhow::{Result, bail};

use crate::cmd::{last_lines, run_bounded};
use crate::net::BENCH_HOST;
use crate::tools::{self, Tools};

/// The files of the run's certificate.
#[derive(Debug, Clone)]
pub struct TlsFiles {
    /// Portcullis's `tls.certs_dir`: `BENCH_HOST.crt` + `BENCH_HOST.key`.
    pub certs_dir: PathBuf,
    pub cert: PathBuf,
    pub key: PathBuf,
    /// Certificate and key in one PEM (HAProxy's `crt`).
    pub combined: PathBuf,
    /// The CA certificate to trust.
    pub ca: PathBuf,
}

/// The openssl steps, in order: CA, leaf key + request, leaf signed by the CA.
fn steps(dir: &Path, f: &TlsFiles) -> Vec<Vec<String>> {
    let p = |p: &Path| p.display().to_string();
    let ca_key = p(&dir.join("ca.key"));
    let csr = p(&dir.join("leaf.csr"));
    let ec = [
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:P-256",
        "-nodes",
    ];
    let mut ca: Vec<String> = ["req", "-x509"].map(String::from).to_vec();
    ca.extend(ec.map(String::from));
    ca.extend(
        [
            "-keyout",
            &ca_key,
            "-out",
            &p(&f.ca),
            "-days",
            "2",
            "-subj",
            "/CN=portcullis-bench throwaway CA",
            "-addext",
            "basicConstraints=critical,CA:TRUE",
            "-addext",
            "keyUsage=critical,keyCertSign,cRLSign",
        ]
        .map(String::from),
    );
    let mut req: Vec<String> = ["req", "-new"].map(String::from).to_vec();
    req.extend(ec.map(String::from));
    req.extend([
        "-keyout".to_owned(),
        p(&f.key),
        "-out".to_owned(),
        csr.clone(),
        "-subj".to_owned(),
        format!("/CN={BENCH_HOST}"),
        "-addext".to_owned(),
        format!("subjectAltName=DNS:{BENCH_HOST}"),
    ]);
    let sign: Vec<String> = [
        "x509",
        "-req",
        "-in",
        &csr,
        "-CA",
        &p(&f.ca),
        "-CAkey",
        &ca_key,
        "-set_serial",
        "2",
        "-days",
        "2",
        "-copy_extensions",
        "copy",
        "-out",
        &p(&f.cert),
    ]
    .map(String::from)
    .to_vec();
    vec![ca, req, sign]
}

/// Makes the CA and the leaf under `dir/tls` and returns their paths.
pub fn generate(dir: &Path, tools: &Tools) -> Result<TlsFiles> {
    let tls_dir = dir.join("tls");
    let certs_dir = tls_dir.join("certs");
    std::fs::create_dir_all(&certs_dir)?;
    let files = TlsFiles {
        cert: certs_dir.join(format!("{BENCH_HOST}.crt")),
        key: certs_dir.join(format!("{BENCH_HOST}.key")),
        combined: tls_dir.join("haproxy.pem"),
        ca: tls_dir.join("ca.pem"),
        certs_dir,
    };
    let openssl = tools.path(tools::OPENSSL)?;
    for (i, args) in steps(&tls_dir, &files).into_iter().enumerate() {
        let mut cmd = Command::new(openssl);
        cmd.args(&args);
        let out = run_bounded(
            cmd,
            Duration::from_secs(30),
            dir,
            &format!("openssl-cert-{i}"),
        )?;
        if !out.status.success() {
            bail!(
                "openssl {} failed ({}): {}",
                args.join(" "),
                out.status,
                last_lines(&out.stderr, 5)
            );
        }
    }
    let pem = [std::fs::read(&files.cert)?, std::fs::read(&files.key)?].concat();
    std::fs::write(&files.combined, pem)?;
    Ok(files)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ecdsa_p256_leaf_for_the_bench_host_signed_by_the_ca() {
        let dir = Path::new("/tmp/x/tls");
        let f = TlsFiles {
            certs_dir: dir.join("certs"),
            cert: dir.join("certs/bench.example.crt"),
            key: dir.join("certs/bench.example.key"),
            combined: dir.join("haproxy.pem"),
            ca: dir.join("ca.pem"),
        };
        let s = steps(dir, &f);
        assert_eq!(s.len(), 3);
        for step in &s[..2] {
            assert!(
                step.join(" ")
                    .contains("-newkey ec -pkeyopt ec_paramgen_curve:P-256")
            );
        }
        assert!(s[1].contains(&"subjectAltName=DNS:bench.example".to_owned()));
        let sign = s[2].join(" ");
        assert!(sign.contains("-CA /tmp/x/tls/ca.pem") && sign.contains("-copy_extensions copy"));
        assert!(sign.ends_with("-out /tmp/x/tls/certs/bench.example.crt"));
    }
}

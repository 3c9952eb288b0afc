//! The TLS keys: the contract file from the TLS issue verbatim, and every TLS error case.

use std::path::Path;
use std::time::Duration;

use super::*;

const CONTRACT: &str = r#"
listeners:
  - address: "127.0.0.1:8080"
    redirect_https: true             # optional: 308 to https for every site on this listener
  - address: "127.0.0.1:8443"
    tls: true                        # TLS 1.2 + 1.3 only; ALPN h2, http/1.1
tls:
  certs_dir: "certs"                 # one PEM chain + key per file pair, or a folder per name with cert.pem/key.pem; names come from SANs
  default_cert: "shop.example"       # optional: served when the client sends no SNI
  handshake_timeout: "10s"
sites:
  - name: shop
    hosts: ["shop.example"]
    origins: ["https://origin.shop.example:443"]
    origin_tls:
      ca_file: "origin-ca.pem"       # optional; default: the webpki roots
      server_name: "origin.shop.example"  # optional SNI/verification name override
"#;

/// A folder with `certs/` (a dev CA and a `shop.example` pair) and `origin-ca.pem`.
fn tls_dir() -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("tempdir");
    let certs = dir.path().join("certs");
    let made = portcullis_certs::generate(&["shop.example".to_owned()], &certs).expect("certs");
    std::fs::copy(&made.ca_cert, dir.path().join("origin-ca.pem")).expect("copy CA");
    dir
}

fn errors_in(dir: &Path, yaml: &str) -> Vec<String> {
    match Config::from_yaml(yaml, dir) {
        Ok(_) => panic!("expected errors for:\n{yaml}"),
        Err(e) => e.errors.iter().map(ToString::to_string).collect(),
    }
}

#[test]
fn tls_contract_file_loads_verbatim() {
    let dir = tls_dir();
    let path = dir.path().join("edge.yaml");
    std::fs::write(&path, CONTRACT).expect("write");
    let cfg = Config::load(&path).unwrap_or_else(|e| panic!("contract config must load: {e}"));
    let (plain, tls) = (&cfg.listeners[0], &cfg.listeners[1]);
    assert!(plain.redirect_https && !plain.tls);
    assert!(tls.tls && !tls.redirect_https);
    let section = cfg.tls.expect("tls section");
    assert_eq!(section.certs_dir, dir.path().join("certs"));
    assert_eq!(section.default_cert.as_deref(), Some("shop.example"));
    assert_eq!(section.handshake_timeout, Duration::from_secs(10));
    let site = &cfg.sites[0];
    assert!(site.origins[0].tls);
    assert_eq!(site.origins[0].authority, "origin.shop.example:443");
    let origin_tls = site.origin_tls.as_ref().expect("origin_tls");
    assert_eq!(origin_tls.ca_file, Some(dir.path().join("origin-ca.pem")));
    assert_eq!(
        origin_tls.server_name.as_deref(),
        Some("origin.shop.example")
    );
    assert!(!origin_tls.insecure_skip_verify);
}

#[test]
fn defaults_of_the_tls_keys() {
    let dir = tls_dir();
    let yaml = "listeners:\n  - address: \"127.0.0.1:0\"\n    tls: true\n\
                tls:\n  certs_dir: certs\n\
                sites:\n  - name: a\n    hosts: [a.example]\n    origins: [\"https://o.example\"]\n";
    let cfg = Config::from_yaml(yaml, dir.path()).expect("valid");
    let tls = cfg.tls.expect("tls");
    assert_eq!(tls.handshake_timeout, Duration::from_secs(10));
    assert_eq!(tls.default_cert, None);
    assert_eq!(cfg.sites[0].origins[0].authority, "o.example:443");
    assert!(cfg.sites[0].origin_tls.is_none(), "webpki roots by default");
}

/// Each case: a broken config, text the error must contain (key and cause), and its line.
#[test]
fn every_tls_error_names_key_and_line() {
    let dir = tls_dir();
    std::fs::write(dir.path().join("junk.pem"), "not a certificate\n").expect("junk");
    let site =
        "sites:\n  - name: a\n    hosts: [a.example]\n    origins: [\"http://127.0.0.1:9000\"]\n";
    let https_site = site.replace("http://127.0.0.1:9000", "https://127.0.0.1:9443");
    let tls_listener = "listeners:\n  - address: \"127.0.0.1:0\"\n    tls: true\n";
    let plain_listener = "listeners:\n  - address: \"127.0.0.1:0\"\n";
    let section = "tls:\n  certs_dir: certs\n";
    let cases: Vec<(String, &str, u32)> = vec![
        (
            format!("{tls_listener}{site}"),
            "listeners[0].tls: a listener with tls: true needs the top-level tls: section",
            3,
        ),
        (
            format!("{plain_listener}{section}{site}"),
            "tls: tls: is set but no listener has tls: true",
            4,
        ),
        (
            format!("{plain_listener}    redirect_https: true\n{site}"),
            "listeners[0].redirect_https: redirect_https needs a listener with tls: true",
            3,
        ),
        (
            format!("{tls_listener}    redirect_https: true\n{section}{site}"),
            "listeners[0].redirect_https: redirect_https is for plain listeners",
            4,
        ),
        (
            format!("{tls_listener}tls:\n  certs_dir: nowhere\n{site}"),
            "tls.certs_dir: ",
            5,
        ),
        (
            format!("{tls_listener}{section}  default_cert: other.example\n{site}"),
            "tls.certs_dir: ",
            5,
        ),
        (
            format!("{tls_listener}{section}  handshake_timeout: 0s\n{site}"),
            "tls.handshake_timeout: must be greater than zero",
            6,
        ),
        (
            format!("{tls_listener}{section}  handshake_timeout: soon\n{site}"),
            "tls.handshake_timeout: \"soon\" is not a duration",
            6,
        ),
        (
            format!("{tls_listener}{section}  colour: red\n{site}"),
            "unknown field `colour`",
            6,
        ),
        (
            format!("{plain_listener}{site}    origin_tls:\n      server_name: o.example\n"),
            "sites[0].origin_tls: origin_tls is set but no origin of this site is https://",
            8,
        ),
        (
            format!("{plain_listener}{https_site}    origin_tls:\n      ca_file: missing.pem\n"),
            "sites[0].origin_tls.ca_file: unusable origin TLS settings: ",
            8,
        ),
        (
            format!("{plain_listener}{https_site}    origin_tls:\n      ca_file: junk.pem\n"),
            "junk.pem",
            8,
        ),
        (
            format!(
                "{plain_listener}{https_site}    origin_tls:\n      ca_file: origin-ca.pem\n      insecure_skip_verify: true\n"
            ),
            "sites[0].origin_tls.ca_file: insecure_skip_verify accepts any certificate",
            8,
        ),
        (
            format!(
                "{plain_listener}{https_site}    origin_tls:\n      server_name: \"bad name!\"\n"
            ),
            "sites[0].origin_tls.server_name: \"bad name!\" is not a DNS name",
            8,
        ),
    ];
    for (yaml, want, line) in cases {
        let errs = errors_in(dir.path(), &yaml);
        assert!(
            errs.iter()
                .any(|e| e.contains(want) && e.starts_with(&format!("line {line}: "))),
            "want {want:?} at line {line} in {errs:?} for:\n{yaml}"
        );
    }
}

#[test]
fn every_certificate_problem_is_reported_with_its_file() {
    let dir = tls_dir();
    let certs = dir.path().join("certs");
    std::fs::write(
        certs.join("broken.crt"),
        "-----BEGIN CERTIFICATE-----\nnope\n",
    )
    .expect("write");
    std::fs::write(certs.join("broken.key"), "no key here\n").expect("write");
    std::fs::write(certs.join("half.crt"), "x").expect("write");
    let yaml = "listeners:\n  - address: \"127.0.0.1:0\"\n    tls: true\n\
                tls:\n  certs_dir: certs\n\
                sites:\n  - name: a\n    hosts: [a.example]\n    origins: [\"http://127.0.0.1:1\"]\n";
    let errs = errors_in(dir.path(), yaml);
    for file in ["broken.crt", "half.crt"] {
        let path = certs.join(file);
        assert!(
            errs.iter()
                .any(|e| e.contains("tls.certs_dir: ") && e.contains(&*path.to_string_lossy())),
            "no error names {file}: {errs:?}"
        );
    }
}

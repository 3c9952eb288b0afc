//! Every config error case, and the contract file from the forwarding issue verbatim.

use std::path::Path;
use std::time::Duration;

use super::*;

const CONTRACT: &str = r#"
listeners:
  - address: "127.0.0.1:8080"        # plain HTTP: HTTP/1.1 and HTTP/2 prior-knowledge (h2c)
admin:
  address: "127.0.0.1:9901"          # /metrics, /healthz, /readyz (+ later: policy, purge)
  token_file: "admin.token"          # optional; bearer token for endpoints that change state
limits:
  max_connections: 10000
  header_read_timeout: "10s"         # slowloris guard
  idle_timeout: "60s"
  max_request_body: "100MiB"         # 413 beyond it; 0 = unlimited
sites:
  - name: shop                       # label used in metrics and logs
    hosts: ["shop.example", "www.shop.example"]
    origins: ["http://127.0.0.1:9000", "http://127.0.0.1:9001"]
    connect_timeout: "2s"
    response_timeout: "30s"          # time to response headers
"#;

fn dir_with_token() -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(dir.path().join("admin.token"), "s3cret\n").expect("write token");
    dir
}

fn errors(yaml: &str) -> Vec<String> {
    let dir = dir_with_token();
    match Config::from_yaml(yaml, dir.path()) {
        Ok(_) => panic!("expected errors for:\n{yaml}"),
        Err(e) => e.errors.iter().map(ToString::to_string).collect(),
    }
}

fn minimal(extra_site: &str, top: &str) -> String {
    format!(
        "listeners:\n  - address: \"127.0.0.1:0\"\n{top}sites:\n  - name: a\n    hosts: [\"a.example\"]\n    origins: [\"http://127.0.0.1:9000\"]\n{extra_site}"
    )
}

#[test]
fn contract_file_loads_verbatim() {
    let dir = dir_with_token();
    let path = dir.path().join("edge.yaml");
    std::fs::write(&path, CONTRACT).expect("write");
    let cfg = Config::load(&path).expect("contract config must load");
    assert_eq!(cfg.listeners[0].address, "127.0.0.1:8080".parse().unwrap());
    let admin = cfg.admin.expect("admin");
    assert_eq!(admin.address, "127.0.0.1:9901".parse().unwrap());
    assert_eq!(admin.token.as_deref(), Some("s3cret"));
    assert_eq!(cfg.limits.max_connections, 10000);
    assert_eq!(cfg.limits.header_read_timeout, Duration::from_secs(10));
    assert_eq!(cfg.limits.idle_timeout, Duration::from_secs(60));
    assert_eq!(cfg.limits.max_request_body, Some(100 << 20));
    let site = &cfg.sites[0];
    assert_eq!(site.name, "shop");
    assert_eq!(site.hosts, ["shop.example", "www.shop.example"]);
    assert_eq!(site.origins[1].authority, "127.0.0.1:9001");
    assert_eq!(site.connect_timeout, Duration::from_secs(2));
    assert_eq!(site.response_timeout, Duration::from_secs(30));
    assert!(!site.h2);
}

#[test]
fn defaults_and_extensions() {
    let dir = dir_with_token();
    let yaml = minimal(
        "    h2: true\n    origin_down_for: \"500ms\"\n",
        "limits:\n  max_request_body: 0\n  max_header_size: \"16KiB\"\nlogging:\n  access_log: false\n  level: debug\n",
    );
    let cfg = Config::from_yaml(&yaml, dir.path()).expect("valid");
    assert!(cfg.admin.is_none());
    assert_eq!(cfg.limits.max_request_body, None, "0 means unlimited");
    assert_eq!(cfg.limits.max_header_size, 16 << 10);
    assert!(!cfg.logging.access_log);
    assert_eq!(cfg.logging.level, "debug");
    assert!(cfg.sites[0].h2);
    assert_eq!(cfg.sites[0].origin_down_for, Duration::from_millis(500));
    assert_eq!(cfg.sites[0].origins[0].authority, "127.0.0.1:9000");
    let yaml = minimal("", "");
    let cfg = Config::from_yaml(&yaml, dir.path()).expect("valid");
    assert_eq!(cfg.sites[0].connect_timeout, Duration::from_secs(5));
    assert_eq!(cfg.limits.max_request_body, Some(100 << 20));
}

#[test]
fn hosts_are_canonicalised() {
    let dir = dir_with_token();
    let yaml = minimal("", "").replace("[\"a.example\"]", "[\"A.Example.\"]");
    let cfg = Config::from_yaml(&yaml, dir.path()).expect("valid");
    assert_eq!(cfg.sites[0].hosts, ["a.example"]);
}

/// Each case: a broken config, and text every reported error line must contain (key + cause).
#[test]
fn every_error_names_key_and_line() {
    let cases: Vec<(String, &str, u32)> = vec![
        (
            minimal("    colour: red\n", ""),
            "unknown field `colour`",
            7,
        ),
        (minimal("", "bogus: 1\n"), "unknown field `bogus`", 3),
        (
            minimal("", "").replace("127.0.0.1:0", "localhost:80"),
            "listeners[0].address: \"localhost:80\" is not an IP address with a port",
            2,
        ),
        (
            minimal("", "").replace("127.0.0.1:0", "127.0.0.1"),
            "listeners[0].address",
            2,
        ),
        (
            minimal("", "").replace("[\"a.example\"]", "[]"),
            "sites[0].hosts: must not be empty",
            5,
        ),
        (
            minimal("", "").replace("[\"http://127.0.0.1:9000\"]", "[]"),
            "sites[0].origins: must not be empty",
            6,
        ),
        (
            minimal("", "").replace("http://127.0.0.1:9000", "ftp://x"),
            "sites[0].origins[0]: \"ftp://x\" is not a valid origin URL: the scheme must be http:// or https://",
            6,
        ),
        (
            minimal("", "").replace("http://127.0.0.1:9000", "http://127.0.0.1:9000/app"),
            "without a path",
            6,
        ),
        (
            minimal("    connect_timeout: \"2 seconds\"\n", ""),
            "sites[0].connect_timeout: \"2 seconds\" is not a duration",
            7,
        ),
        (
            minimal("    response_timeout: \"30\"\n", ""),
            "sites[0].response_timeout: \"30\" is not a duration",
            7,
        ),
        (
            minimal("", "limits:\n  idle_timeout: \"1.5s\"\n"),
            "limits.idle_timeout: \"1.5s\" is not a duration",
            4,
        ),
        (
            minimal("", "limits:\n  header_read_timeout: \"ten\"\n"),
            "limits.header_read_timeout",
            4,
        ),
        (
            minimal("", "limits:\n  max_request_body: \"100MB\"\n"),
            "limits.max_request_body: \"100MB\" is not a size",
            4,
        ),
        (
            minimal("", "limits:\n  max_header_size: 1024\n"),
            "limits.max_header_size",
            4,
        ),
        (
            minimal("", "limits:\n  max_connections: 0\n"),
            "limits.max_connections: must be greater than zero",
            4,
        ),
        (
            minimal("", "limits:\n  max_connections: 18446744073709551615\n"),
            "limits.max_connections: 18446744073709551615 is more than the maximum of 10000000",
            4,
        ),
        (
            minimal("", "").replace("a.example", "bad host"),
            "sites[0].hosts[0]: \"bad host\" is not a valid host name",
            5,
        ),
        (
            minimal("", "").replace("a.example", "a.example:8080"),
            "must not carry a port",
            5,
        ),
        (
            minimal("", "").replace("name: a", "name: \"_x\""),
            "sites[0].name: \"_x\" is not a valid site name",
            4,
        ),
        (
            minimal(
                "",
                "admin:\n  address: \"127.0.0.1:9901\"\n  token_file: missing.token\n",
            ),
            "admin.token_file: cannot read token file",
            5,
        ),
        (
            minimal("", "logging:\n  level: loud\n"),
            "logging.level: \"loud\" is not a log level",
            4,
        ),
        (
            minimal("", "logging:\n  access_log: maybe\n"),
            "access_log",
            4,
        ),
        ("listeners: [\n".to_owned(), "invalid YAML", 1),
        (
            "listeners: []\nsites: []\n".to_owned(),
            "listeners: must not be empty",
            1,
        ),
    ];
    for (yaml, want, line) in cases {
        let errs = errors(&yaml);
        assert!(
            errs.iter().any(|e| e.contains(want)),
            "want {want:?} in {errs:#?}\nfor:\n{yaml}"
        );
        let prefix = format!("line {line}:");
        assert!(
            errs.iter()
                .any(|e| e.starts_with(&prefix) || e.contains(&format!("line {line}"))),
            "want {prefix:?} in {errs:#?}\nfor:\n{yaml}"
        );
    }
}

#[test]
fn a_host_in_two_sites_is_refused_with_both_places() {
    let yaml = "listeners:\n  - address: \"127.0.0.1:0\"\nsites:\n  - name: a\n    hosts: [\"a.example\"]\n    origins: [\"http://127.0.0.1:9000\"]\n  - name: b\n    hosts: [\"x.example\", \"A.example\"]\n    origins: [\"http://127.0.0.1:9001\"]\n";
    let errs = errors(yaml);
    assert_eq!(errs.len(), 1, "{errs:#?}");
    assert!(
        errs[0].starts_with(
            "line 8: sites[1].hosts[1]: host \"a.example\" is already served by sites[0].hosts[0]"
        ),
        "{}",
        errs[0]
    );
}

#[test]
fn duplicate_site_names_and_addresses() {
    let yaml = "listeners:\n  - address: \"127.0.0.1:8080\"\n  - address: \"127.0.0.1:8080\"\nadmin:\n  address: \"127.0.0.1:8080\"\nsites:\n  - name: a\n    hosts: [\"a.example\"]\n    origins: [\"http://127.0.0.1:9000\"]\n  - name: a\n    hosts: [\"b.example\"]\n    origins: [\"http://127.0.0.1:9001\"]\n";
    let errs = errors(yaml);
    assert!(
        errs.iter()
            .any(|e| e.contains("listeners[1].address: address 127.0.0.1:8080 is used twice")),
        "{errs:#?}"
    );
    assert!(
        errs.iter().any(|e| e.contains("admin.address")),
        "{errs:#?}"
    );
    assert!(
        errs.iter()
            .any(|e| e.contains("sites[1].name: site name \"a\" is used twice")),
        "{errs:#?}"
    );
}

#[test]
fn all_errors_are_reported_at_once() {
    let yaml = minimal(
        "    connect_timeout: \"x\"\n    response_timeout: \"y\"\n",
        "limits:\n  idle_timeout: \"z\"\n",
    );
    assert_eq!(errors(&yaml).len(), 3);
}

#[test]
fn load_names_the_file() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("edge.yaml");
    std::fs::write(&path, minimal("    connect_timeout: \"x\"\n", "")).expect("write");
    let errs = Config::load(&path).expect_err("invalid");
    let text = errs.to_string();
    assert!(
        text.contains(&format!("{}:7: sites[0].connect_timeout", path.display())),
        "{text}"
    );
    let missing = Config::load(Path::new("/nonexistent/edge.yaml")).expect_err("missing");
    assert!(
        missing
            .to_string()
            .contains("/nonexistent/edge.yaml: cannot read the file"),
        "{missing}"
    );
}

#[test]
fn yaml_bombs_and_duplicate_keys_are_refused() {
    let dup = "listeners:\n  - address: \"127.0.0.1:0\"\nlisteners: []\nsites: []\n";
    assert!(
        errors(dup)[0].contains("line"),
        "duplicate keys name a line"
    );
}

/// The cache contract from the cache issue, verbatim.
#[test]
fn cache_section_and_site_switch() {
    let dir = dir_with_token();
    let yaml = r#"
listeners:
  - address: "127.0.0.1:0"
cache:
  max_size: "512MiB"                 # memory, bounded by bytes (not entries)
  max_object_size: "16MiB"           # larger responses stream through uncached
  heuristic_fraction: 0.1            # RFC 9111 4.2.2 heuristic freshness, 10% of Last-Modified age
sites:
  - name: shop
    hosts: ["shop.example"]
    origins: ["http://127.0.0.1:9000"]
    cache: true                      # per-site switch (default false)
  - name: api
    hosts: ["api.example"]
    origins: ["http://127.0.0.1:9001"]
"#;
    let cfg = Config::from_yaml(yaml, dir.path()).expect("cache contract loads");
    assert_eq!(
        cfg.cache,
        CacheConfig {
            max_size: 512 << 20,
            max_object_size: 16 << 20,
            heuristic_fraction: 0.1,
        }
    );
    assert!(cfg.sites[0].cache);
    assert!(!cfg.sites[1].cache, "default false");
    // Without the section the defaults apply.
    let cfg = Config::from_yaml(&minimal("    cache: true\n", ""), dir.path()).expect("loads");
    assert_eq!(cfg.cache, CacheConfig::default());
    assert!(cfg.sites[0].cache);
    let cfg = Config::from_yaml(&minimal("", "cache:\n  max_size: 1048576\n"), dir.path())
        .expect("a bare byte count");
    assert_eq!(cfg.cache.max_size, 1 << 20);
}

#[test]
fn cache_errors_name_key_and_line() {
    let errs = errors(&minimal(
        "",
        "cache:\n  max_size: \"lots\"\n  max_object_size: 0\n  heuristic_fraction: 1.5\n",
    ));
    assert_eq!(errs.len(), 3, "{errs:?}");
    assert!(
        errs[0].contains("line 4")
            && errs[0].contains("cache.max_size")
            && errs[0].contains("\"lots\""),
        "{errs:?}"
    );
    assert!(
        errs[1].contains("line 5")
            && errs[1].contains("cache.max_object_size")
            && errs[1].contains("greater than zero"),
        "{errs:?}"
    );
    assert!(
        errs[2].contains("line 6")
            && errs[2].contains("cache.heuristic_fraction")
            && errs[2].contains("between 0 and 1"),
        "{errs:?}"
    );
    let errs = errors(&minimal("", "cache:\n  max_entries: 5\n"));
    assert!(errs[0].contains("max_entries"), "{errs:?}");
    let errs = errors(&minimal("    cache: \"yes please\"\n", ""));
    assert!(errs[0].contains("cache"), "{errs:?}");
}

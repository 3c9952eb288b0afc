use super::*;
use proptest::prelude::*;

fn m(target: &str) -> Option<String> {
    let mut buf = vec![0u8; target.len()];
    match_form(target.as_bytes(), &mut buf).map(|b| String::from_utf8_lossy(b).into_owned())
}

fn n(target: &str) -> String {
    match normalize_path(target) {
        Ok(p) => p.into_owned(),
        Err(e) => panic!("{target:?}: {e}"),
    }
}

#[test]
fn forwarded_form() {
    assert_eq!(n("/"), "/");
    assert_eq!(n("/a/b?x=1"), "/a/b?x=1");
    assert!(matches!(
        normalize_path("/a/b?x=/../"),
        Ok(Cow::Borrowed(_))
    ));
    assert_eq!(n("/%7Euser/%41%2f%2E"), "/~user/A%2F.");
    assert_eq!(n("/a/%2e%2E/b"), "/b");
    assert_eq!(n("/a/./b/../c"), "/a/c");
    assert_eq!(n("//a///b/"), "/a/b/");
    assert_eq!(n("/../../a"), "/a");
    assert_eq!(n("/a/.."), "/");
    assert_eq!(n("/a/b/."), "/a/b/");
    assert_eq!(n("/a%zz"), "/a%zz");
    assert_eq!(normalize_path("a/b"), Err(PathError::NotOriginForm));
    assert_eq!(normalize_path("/a b"), Err(PathError::BadByte));
    assert_eq!(normalize_path("/a\0"), Err(PathError::BadByte));
    assert_eq!(normalize_path("/ä"), Err(PathError::BadByte));
}

#[test]
fn match_form_reads_every_bypass_spelling() {
    let want = Some("/shared/abc123/x".to_owned());
    for spelling in [
        "/shared/abc123/x",
        "/shared/abc123/x?download=1",
        "/shared/abc123/x#frag",
        "//shared//abc123///x",
        "/shared/./abc123/x",
        "/other/../shared/abc123/x",
        "/%73hared/abc123/x",
        "/shared%2Fabc123%2fx",
        "/shared%5Cabc123\\x",
        "/shared/abc123/%2e/x",
        "/x/%2e%2e/shared/abc123/x",
        "/x/%252e%252e/shared/abc123/x",
        "/shared%25252Fabc123/x",
        "/shared;jsessionid=1/abc123/x",
        "/x/..;/shared/abc123/x",
        "http://files.example/shared/abc123/x",
        "HTTPS://files.example:443/shared/abc123/x",
    ] {
        assert_eq!(m(spelling), want, "{spelling:?}");
    }
    assert_eq!(m("http://files.example"), Some("/".into()));
    assert_eq!(m("*"), None, "asterisk-form is unreadable: fail closed");
    assert_eq!(m("files.example:443"), None);
    assert_eq!(m("/%2525252e"), None, "still decoding after the last round");
}

#[test]
fn prefix_on_segment_boundaries() {
    let yes = [
        ("/a/b", "/"),
        ("/a/b", "/a"),
        ("/a/b", "/a/"),
        ("/a/b", "/a/b"),
        ("/a/b", "/a/b/"),
        ("/a/b/", "/a/b"),
        ("/a/b/c", "/a/b/"),
    ];
    for (path, prefix) in yes {
        assert!(under(path.as_bytes(), prefix.as_bytes()), "{path} {prefix}");
    }
    let no = [
        ("/a/bc", "/a/b"),
        ("/a/bc", "/a/b/"),
        ("/a", "/a/b"),
        ("/", "/a"),
    ];
    for (path, prefix) in no {
        assert!(
            !under(path.as_bytes(), prefix.as_bytes()),
            "{path} {prefix}"
        );
    }
}

/// The naive reference: split, stack, join — allocations everywhere, nothing in place.
fn naive_segments(path: &[u8], strip_params: bool) -> Vec<u8> {
    let mut stack: Vec<&[u8]> = Vec::new();
    let mut dir = true;
    for seg in path.split(|&b| b == b'/').skip(1) {
        let seg = if strip_params {
            seg.split(|&b| b == b';').next().unwrap_or(b"")
        } else {
            seg
        };
        dir = true;
        match seg {
            b"" | b"." => {}
            b".." => {
                stack.pop();
            }
            s => {
                stack.push(s);
                dir = false;
            }
        }
    }
    let mut out = Vec::new();
    for s in &stack {
        out.push(b'/');
        out.extend_from_slice(s);
    }
    if dir || out.is_empty() {
        out.push(b'/');
    }
    out
}

fn naive_decode(path: &[u8], all: bool) -> Vec<u8> {
    let mut out = Vec::new();
    let mut i = 0;
    while i < path.len() {
        let esc = path
            .get(i + 1..i + 3)
            .filter(|h| path[i] == b'%' && h.iter().all(u8::is_ascii_hexdigit))
            .and_then(|h| u8::from_str_radix(std::str::from_utf8(h).ok()?, 16).ok());
        match esc {
            Some(c) if all || c.is_ascii_alphanumeric() || b"-._~".contains(&c) => {
                out.push(c);
                i += 3;
            }
            Some(_) => {
                out.push(b'%');
                out.extend(path[i + 1..i + 3].to_ascii_uppercase());
                i += 3;
            }
            None => {
                out.push(path[i]);
                i += 1;
            }
        }
    }
    out
}

fn naive_match(target: &str) -> Option<Vec<u8>> {
    let path = target.split(['?', '#']).next().unwrap_or("");
    let lower = path.to_ascii_lowercase();
    let path = if let Some(rest) = lower
        .strip_prefix("http://")
        .or_else(|| lower.strip_prefix("https://"))
    {
        let skip = path.len() - rest.len();
        match path[skip..].find('/') {
            Some(i) => &path[skip + i..],
            None => "/",
        }
    } else {
        path
    };
    if !path.starts_with('/') {
        return None;
    }
    let mut p = naive_segments(&naive_decode(path.as_bytes(), false), false);
    let mut rounds = 0;
    loop {
        let d = naive_decode(&p, true);
        if d == p {
            break;
        }
        rounds += 1;
        if rounds > MAX_DECODE_ROUNDS {
            return None;
        }
        p = d;
    }
    let p: Vec<u8> = p
        .into_iter()
        .map(|b| if b == b'\\' { b'/' } else { b })
        .collect();
    Some(naive_segments(&p, true))
}

fn naive_under(path: &[u8], prefix: &[u8]) -> bool {
    let segs = |p: &[u8]| -> Vec<Vec<u8>> {
        p.split(|&b| b == b'/')
            .filter(|s| !s.is_empty())
            .map(<[u8]>::to_vec)
            .collect()
    };
    segs(path).starts_with(&segs(prefix))
}

fn path_strategy() -> impl Strategy<Value = String> {
    let piece = prop_oneof![
        Just("/".to_owned()),
        Just(".".to_owned()),
        Just("..".to_owned()),
        Just(";".to_owned()),
        Just("\\".to_owned()),
        Just("%".to_owned()),
        Just("?".to_owned()),
        "%[0-9a-fA-F]{2}",
        "%25[0-9a-fA-F]{2}",
        "%2[eEfF5]",
        "[a-c]{1,3}",
    ];
    proptest::collection::vec(piece, 0..12).prop_map(|v| format!("/{}", v.concat()))
}

proptest! {
    #[test]
    fn match_form_agrees_with_reference(target in path_strategy()) {
        let mut buf = vec![0u8; target.len()];
        let got = match_form(target.as_bytes(), &mut buf).map(<[u8]>::to_vec);
        prop_assert_eq!(got, naive_match(&target));
    }

    #[test]
    fn matching_the_forwarded_form_is_matching_the_target(target in path_strategy()) {
        // The proxy matches on the raw target and forwards the normalised one: both must agree.
        if let Ok(forwarded) = normalize_path(&target) {
            prop_assert_eq!(m(&forwarded), m(&target));
            let again = normalize_path(&forwarded).map(Cow::into_owned);
            prop_assert_eq!(again, Ok(forwarded.clone().into_owned()), "idempotent");
        }
    }

    #[test]
    fn under_agrees_with_reference(a in path_strategy(), b in path_strategy()) {
        if let (Some(path), Some(prefix)) = (m(&a), m(&b)) {
            prop_assert_eq!(
                under(path.as_bytes(), prefix.as_bytes()),
                naive_under(path.as_bytes(), prefix.as_bytes())
            );
        }
    }

    #[test]
    fn never_panics(target in "\\PC{0,64}") {
        let _ = normalize_path(&target);
        let _ = m(&target);
    }
}

//! Secondary cache keys (RFC 9111 §4.1).

use http::header::{ACCEPT, ACCEPT_CHARSET, ACCEPT_ENCODING, ACCEPT_LANGUAGE, VARY};
use http::{HeaderMap, HeaderName};

use super::Vary;
use super::directives::split_list;

/// The `Vary` of a response.
///
/// All lines combined; empty elements ignored; a `*` anywhere (`*, *`, `Foo, *`, `, *`) is
/// [`Vary::Star`] (RFC 9110 §12.5.5). An element that is not a valid field name can never be
/// matched reliably, so it is treated as `*` too.
pub fn vary(resp: &HeaderMap) -> Vary {
    let mut names: Vec<HeaderName> = Vec::new();
    for element in resp
        .get_all(VARY)
        .iter()
        .flat_map(|v| split_list(v.as_bytes()))
    {
        if element == b"*" {
            return Vary::Star;
        }
        match HeaderName::from_bytes(element) {
            Ok(name) if !names.contains(&name) => names.push(name),
            Ok(_) => {}
            Err(_) => return Vary::Star,
        }
    }
    if names.is_empty() {
        Vary::None
    } else {
        Vary::Names(names)
    }
}

/// The request's values of the headers `names` nominates (RFC 9111 §4.1), normalised so that
/// semantically equal values compare equal: the lines of a field combined with ", ", whitespace
/// around list separators removed, case folded where the field is case-insensitive. `None` for
/// a header the request lacks (which matches only a request that lacks it too).
///
/// Precisely: the lines are split at commas outside quoted-strings, each element trimmed, empty
/// elements dropped, and the elements joined with "," (so `1,2`, ` 1, 2 ` and two lines `1`
/// and `2` are equal). For the `Accept*` fields, whose tokens are case-insensitive, the value
/// is lowercased and whitespace around `;` and `=` removed. Element order is kept: it carries
/// meaning (preference) in general.
pub fn secondary_key(names: &[HeaderName], req: &HeaderMap) -> Vec<Option<Box<[u8]>>> {
    names
        .iter()
        .map(|name| {
            let mut lines = req.get_all(name).iter().peekable();
            lines.peek()?;
            let fold = is_accept(name);
            let mut out = Vec::new();
            for element in lines.flat_map(|v| split_list(v.as_bytes())) {
                if !out.is_empty() {
                    out.push(b',');
                }
                if fold {
                    push_folded(element, &mut out);
                } else {
                    out.extend_from_slice(element);
                }
            }
            Some(out.into_boxed_slice())
        })
        .collect()
}

fn is_accept(name: &HeaderName) -> bool {
    *name == ACCEPT
        || *name == ACCEPT_ENCODING
        || *name == ACCEPT_LANGUAGE
        || *name == ACCEPT_CHARSET
}

/// Lowercases and drops the optional whitespace around `;` and `=` (RFC 9110 §5.6.6
/// parameters); other whitespace runs become one space.
fn push_folded(element: &[u8], out: &mut Vec<u8>) {
    let (mut space, mut after_separator) = (false, true);
    for &c in element {
        match c {
            b' ' | b'\t' => space = true,
            b';' | b'=' => {
                out.push(c);
                (space, after_separator) = (false, true);
            }
            _ => {
                if space && !after_separator {
                    out.push(b' ');
                }
                out.push(c.to_ascii_lowercase());
                (space, after_separator) = (false, false);
            }
        }
    }
}

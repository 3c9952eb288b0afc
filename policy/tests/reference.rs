//! The compiled table against a naive reference: every order checked linearly with plain string
//! operations, on random small policies and requests.

use std::time::{Duration, UNIX_EPOCH};

use portcullis_policy::{
    Action, Authority, AuthorityType, BlockStatus, CompiledPolicy, Country, Coverage, Disclosure,
    HostRule, Mode, Order, PathPrefix, Policy, RequestFacts, Scope, UnknownCountry, Verdict,
};
use proptest::prelude::*;
use time::OffsetDateTime;

const BASE: i64 = 1_800_000_000;
const NAMES: &[&str] = &[
    "a.example",
    "b.a.example",
    "c.b.a.example",
    "b.example",
    "ab.example",
];
const PATHS: &[&str] = &["/x", "/x/", "/x/y", "/xy", "/y/z/"];
const ACTIONS: &[Action] = &[
    Action::Redirect,
    Action::Status(BlockStatus::NotFound404),
    Action::Status(BlockStatus::Forbidden403),
    Action::Unavailable451,
    Action::Close,
    Action::RefuseTls,
];

#[derive(Debug, Clone)]
struct Spec {
    hosts: Vec<(usize, u8)>,
    paths: Vec<usize>,
    countries: Vec<u8>,
    unknown_blocks: bool,
    from: i64,
    until: Option<i64>,
    lifted: Option<i64>,
    dry_run: bool,
    action: usize,
}

fn spec() -> impl Strategy<Value = Spec> {
    (
        prop::collection::vec((0..NAMES.len(), 0u8..3), 1..3),
        prop::collection::vec(0..PATHS.len(), 0..2),
        prop::collection::vec(0u8..2, 0..2),
        any::<bool>(),
        0i64..3,
        prop::option::of(1i64..4),
        prop::option::of(0i64..4),
        any::<bool>(),
        0..ACTIONS.len(),
    )
        .prop_map(
            |(hosts, paths, countries, unknown_blocks, from, until, lifted, dry_run, action)| {
                Spec {
                    hosts,
                    paths,
                    countries,
                    unknown_blocks,
                    from: from * 10,
                    until: until.map(|u| from * 10 + u * 10),
                    lifted: lifted.map(|l| l * 10 + 5),
                    dry_run,
                    action,
                }
            },
        )
}

fn t(offset: i64) -> OffsetDateTime {
    OffsetDateTime::from_unix_timestamp(BASE + offset).unwrap_or(OffsetDateTime::UNIX_EPOCH)
}

const COUNTRIES: [[u8; 2]; 2] = [*b"DE", *b"FR"];

fn build(specs: &[Spec]) -> Policy {
    let orders = specs
        .iter()
        .enumerate()
        .map(|(i, s)| {
            let mut countries: Vec<Country> = s
                .countries
                .iter()
                .filter_map(|&c| Country::new(COUNTRIES[c as usize]))
                .collect();
            countries.dedup();
            let on_unknown_country = (!countries.is_empty()).then_some(if s.unknown_blocks {
                UnknownCountry::Block
            } else {
                UnknownCountry::Allow
            });
            Order {
                id: format!("O{i}"),
                authority: Authority {
                    name: "Court".into(),
                    kind: AuthorityType::Court,
                    jurisdiction: Country::new(*b"DE").unwrap_or_else(|| unreachable!()),
                },
                legal_basis: "x".into(),
                reference: "r".into(),
                issued_at: t(0),
                effective_from: t(s.from),
                expires_at: s.until.map(t),
                lifted_at: s.lifted.map(t),
                notice_url: "https://n.example/".into(),
                disclosure: Disclosure::Public,
                mode: if s.dry_run {
                    Mode::DryRun
                } else {
                    Mode::Enforce
                },
                scope: Scope {
                    hosts: s
                        .hosts
                        .iter()
                        .map(|&(n, c)| HostRule {
                            name: NAMES[n].into(),
                            unicode: None,
                            coverage: [
                                Coverage::Exact,
                                Coverage::WithSubdomains,
                                Coverage::SubdomainsOnly,
                            ][c as usize],
                        })
                        .collect(),
                    paths: s
                        .paths
                        .iter()
                        .filter_map(|&p| PathPrefix::new(PATHS[p]))
                        .collect(),
                    countries,
                    on_unknown_country,
                },
                action: ACTIONS[s.action],
                line: 1,
            }
        })
        .collect();
    Policy {
        serial: 1,
        blocked_by: "https://e.example/".into(),
        orders,
    }
}

fn segs(p: &str) -> Vec<&str> {
    p.split('/').filter(|s| !s.is_empty()).collect()
}

/// (verdict order index and action, matched indices), computed the slow obvious way.
fn reference(
    policy: &Policy,
    host: &str,
    path: &str,
    country: Option<[u8; 2]>,
    now: OffsetDateTime,
) -> (Option<(usize, Action)>, Vec<usize>) {
    let host = host.to_ascii_lowercase();
    let host = host.strip_suffix('.').unwrap_or(&host);
    let mut matched = Vec::new();
    let mut best: Option<(u8, usize)> = None;
    for (i, o) in policy.orders.iter().enumerate() {
        let end = [o.expires_at, o.lifted_at].into_iter().flatten().min();
        let active = o.effective_from <= now && end.is_none_or(|e| now < e);
        let host_ok = o.scope.hosts.iter().any(|h| {
            let below = host.ends_with(&format!(".{}", h.name));
            match h.coverage {
                Coverage::Exact => host == h.name,
                Coverage::WithSubdomains => host == h.name || below,
                Coverage::SubdomainsOnly => below,
            }
        });
        let country_ok = o.scope.countries.is_empty()
            || match country {
                Some(c) => o.scope.countries.iter().any(|k| k.code() == c),
                None => o.scope.on_unknown_country == Some(UnknownCountry::Block),
            };
        let path_ok = o.scope.paths.is_empty()
            || o.scope
                .paths
                .iter()
                .any(|p| segs(path).starts_with(&segs(&p.prefix)));
        if active && host_ok && country_ok && path_ok {
            matched.push(i);
            if o.mode == Mode::Enforce && best.is_none_or(|(r, _)| o.action.rank() > r) {
                best = Some((o.action.rank(), i));
            }
        }
    }
    (best.map(|(_, i)| (i, policy.orders[i].action)), matched)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]
    #[test]
    fn table_agrees_with_reference(
        specs in prop::collection::vec(spec(), 1..6),
        host in (0..NAMES.len(), any::<bool>(), any::<bool>(), prop::sample::select(vec!["", "x.", "y.z."])),
        path in prop::sample::select(PATHS.iter().chain(&["/", "/x/y/w", "/z"]).copied().collect::<Vec<_>>()),
        country in prop::option::of(prop::sample::select(vec![*b"DE", *b"FR", *b"US"])),
        now in 0i64..50,
    ) {
        let policy = build(&specs);
        let (idx, upper, dot, prefix) = host;
        let mut h = format!("{prefix}{}", NAMES[idx]);
        if upper { h = h.to_ascii_uppercase(); }
        if dot { h.push('.'); }
        let when = UNIX_EPOCH + Duration::from_secs((BASE + now) as u64);
        let (want, want_matched) = reference(&policy, &h, path, country, t(now));
        let compiled = CompiledPolicy::compile(policy);
        let d = compiled.decide(&RequestFacts { host: &h, path, country, sni: None, now: when });
        let got = match d.verdict {
            Verdict::Block { order, action } => {
                let i = compiled.policy().orders.iter().position(|o| std::ptr::eq(o, order));
                i.map(|i| (i, action))
            }
            Verdict::Allow => None,
            other => panic!("unexpected {other:?}"),
        };
        prop_assert_eq!(got, want);
        let got_matched: Vec<usize> = d
            .matched()
            .filter_map(|o| compiled.policy().orders.iter().position(|p| std::ptr::eq(p, o)))
            .collect();
        prop_assert_eq!(got_matched, want_matched);
    }
}

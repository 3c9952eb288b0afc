//! Reading `/metrics`: a scrape parsed into samples that tests look up by name and labels, and
//! `promtool check metrics` as the judge of the exposition format.

use std::io::Write as _;
use std::net::SocketAddr;
use std::process::{Command, Stdio};

use anyhow::{Context as _, bail};

use crate::client::{H1, get};

/// Waits (see [`crate::eventually`]) until every client connection the proxy counted is closed
/// again: `portcullis_connections_active` back at 0, proof that connection tasks ended through
/// their bookkeeping and not by crashing.
pub async fn no_connection_left_open(admin: SocketAddr) -> anyhow::Result<()> {
    crate::eventually("connections_active returns to 0", || async {
        let s = Scrape::fetch(admin).await?;
        let active = s.get("portcullis_connections_active", &[])?;
        anyhow::ensure!(active == 0.0, "connections_active = {active}");
        Ok(())
    })
    .await
}

/// One sample line: `name{labels} value`.
#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    pub name: String,
    pub labels: Vec<(String, String)>,
    pub value: f64,
}

/// One scrape of `/metrics`.
#[derive(Debug, Clone)]
pub struct Scrape {
    pub text: String,
    pub samples: Vec<Sample>,
}

impl Scrape {
    /// `GET /metrics` from the admin listener; fails unless it answers 200.
    pub async fn fetch(admin: SocketAddr) -> anyhow::Result<Scrape> {
        let reply = H1::connect(admin)
            .await?
            .request(get("admin", "/metrics"))
            .await?;
        if reply.status != 200 {
            bail!("/metrics answered {}: {}", reply.status, reply.text());
        }
        Scrape::parse(&reply.text())
    }

    /// Parses the Prometheus text format (comments skipped, no timestamps expected).
    pub fn parse(text: &str) -> anyhow::Result<Scrape> {
        let samples = text
            .lines()
            .filter(|l| !l.trim().is_empty() && !l.starts_with('#'))
            .map(|l| parse_line(l).with_context(|| format!("bad sample line {l:?}")))
            .collect::<anyhow::Result<Vec<_>>>()?;
        Ok(Scrape {
            text: text.to_owned(),
            samples,
        })
    }

    /// The value of the one sample named `name` whose labels include `labels`. Fails when none
    /// or several match, listing what exists under that name.
    pub fn get(&self, name: &str, labels: &[(&str, &str)]) -> anyhow::Result<f64> {
        let matching: Vec<&Sample> = self
            .samples
            .iter()
            .filter(|s| s.name == name)
            .filter(|s| {
                labels
                    .iter()
                    .all(|(k, v)| s.labels.iter().any(|(sk, sv)| sk == k && sv == v))
            })
            .collect();
        match matching.as_slice() {
            [one] => Ok(one.value),
            [] => bail!(
                "no sample {name}{labels:?}; samples named {name}: {:?}",
                self.named(name)
            ),
            _ => bail!("{name}{labels:?} matches several samples: {matching:?}"),
        }
    }

    /// Like [`Scrape::get`], with a missing series read as 0 (a counter not yet created).
    pub fn get_or_zero(&self, name: &str, labels: &[(&str, &str)]) -> anyhow::Result<f64> {
        let exists = self.samples.iter().any(|s| {
            s.name == name
                && labels
                    .iter()
                    .all(|(k, v)| s.labels.iter().any(|(sk, sv)| sk == k && sv == v))
        });
        if exists {
            self.get(name, labels)
        } else {
            Ok(0.0)
        }
    }

    fn named(&self, name: &str) -> Vec<&Sample> {
        self.samples.iter().filter(|s| s.name == name).collect()
    }
}

fn parse_line(line: &str) -> anyhow::Result<Sample> {
    let (name, labels, rest) = match line.find('{') {
        Some(open) => {
            let (labels, rest) = parse_labels(&line[open + 1..])?;
            (&line[..open], labels, rest)
        }
        None => {
            let (name, rest) = line.split_once(' ').context("no value")?;
            (name, Vec::new(), rest)
        }
    };
    let value = rest.split_whitespace().next().context("no value")?;
    let value = match value {
        "+Inf" => f64::INFINITY,
        "-Inf" => f64::NEG_INFINITY,
        v => v.parse().with_context(|| format!("bad value {v:?}"))?,
    };
    Ok(Sample {
        name: name.to_owned(),
        labels,
        value,
    })
}

/// Parses `k="v",k2="v2"}` and returns the labels and what follows the `}`.
fn parse_labels(mut s: &str) -> anyhow::Result<(Vec<(String, String)>, &str)> {
    let mut labels = Vec::new();
    loop {
        s = s.trim_start_matches([',', ' ']);
        if let Some(rest) = s.strip_prefix('}') {
            return Ok((labels, rest));
        }
        let (key, rest) = s.split_once("=\"").context("label without =\"")?;
        let mut value = String::new();
        let mut chars = rest.char_indices();
        let end = loop {
            match chars.next() {
                Some((i, '"')) => break i,
                Some((_, '\\')) => match chars.next() {
                    Some((_, 'n')) => value.push('\n'),
                    Some((_, c)) => value.push(c),
                    None => bail!("unterminated escape"),
                },
                Some((_, c)) => value.push(c),
                None => bail!("unterminated label value"),
            }
        };
        labels.push((key.trim().to_owned(), value));
        s = &rest[end + 1..];
    }
}

/// Runs `promtool check metrics` on a scrape. A missing promtool is a failure, never a skip:
/// CI must run this check.
pub fn promtool_check(text: &str) -> anyhow::Result<()> {
    let mut child = match Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
    {
        Ok(c) => c,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => bail!(
            "promtool is not installed: `.ci/run` installs it (Debian package `prometheus`; \
             `apt-get install -y prometheus`)"
        ),
        Err(e) => return Err(e).context("cannot run promtool"),
    };
    child
        .stdin
        .take()
        .context("promtool stdin")?
        .write_all(text.as_bytes())?;
    let out = child.wait_with_output()?;
    if !out.status.success() {
        bail!(
            "promtool check metrics failed ({}):\n{}{}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_text_format() -> anyhow::Result<()> {
        let s = Scrape::parse(
            "# HELP x_total X.\n# TYPE x_total counter\n\
             x_total{site=\"shop\",status_class=\"2xx\"} 3\n\
             x_total{site=\"a \\\"q\\\" b\",status_class=\"5xx\"} 1.5\n\
             h_bucket{site=\"shop\",le=\"+Inf\"} 7\nplain 42\n",
        )?;
        assert_eq!(s.get("x_total", &[("site", "shop")])?, 3.0);
        assert_eq!(s.get("x_total", &[("site", "a \"q\" b")])?, 1.5);
        assert_eq!(s.get("h_bucket", &[("le", "+Inf")])?, 7.0);
        assert_eq!(s.get("plain", &[])?, 42.0);
        assert!(s.get("x_total", &[]).is_err(), "ambiguous");
        assert!(s.get("nope", &[]).is_err());
        assert_eq!(s.get_or_zero("nope", &[])?, 0.0);
        Ok(())
    }
}

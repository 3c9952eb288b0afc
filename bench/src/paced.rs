//! The harness's own load generator for the reload scenario: a fixed number
//! of keep-alive connections, each sending requests at a fixed pace, every
//! request's latency recorded with the time it was due.
//!
//! Why not wrk: wrk keeps each connection as busy as it can (closed loop), so
//! during a stall it simply sends fewer requests, and its one histogram
//! cannot say which requests fell into the swap window. Here each request
//! has a due time (`start + offset + k × period`); its latency is measured
//! from that due time, not from when it was actually sent, so a stall that
//! delays the requests behind it counts against all of them (the correction
//! wrk2 makes for coordinated omission). A moderate pace keeps the proxy
//! well below saturation, so latency reflects the swap, not queueing.
//!
//! Threads are plain blocking sockets, one per connection; the harness is
//! pinned to the load CPU, so none of this runs on the proxy core.

use std::io::{BufReader, Write};
use std::net::TcpStream;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use serde::Serialize;

use crate::net::{loopback, read_response};
use crate::stats::percentile;

/// What to send and how fast.
#[derive(Debug, Clone)]
pub struct Pace {
    pub port: u16,
    pub host: String,
    pub path: String,
    /// Body length every response must have (with status 200).
    pub body_len: usize,
    pub connections: usize,
    /// Requests per second over all connections.
    pub rate: u64,
    pub duration: Duration,
    /// The local address to connect from (`127.0.0.N`: another client to the proxy);
    /// `None`: the kernel's choice (127.0.0.1).
    pub source: Option<std::net::IpAddr>,
}

/// One request: when it was due, how long it took from then, whether it
/// was answered 200 with the expected body.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Sample {
    /// Due time, µs since the run started.
    pub due_us: u64,
    pub latency_us: u64,
    pub ok: bool,
}

/// A socket error (connect, write, read, malformed response) and when the
/// request it belonged to was due.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    pub due_us: u64,
    pub error: String,
}

#[derive(Debug, Default)]
pub struct PacedRun {
    pub samples: Vec<Sample>,
    pub failures: Vec<Failure>,
}

/// Latency figures over a set of samples.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct Latency {
    pub requests: u64,
    /// Responses other than 200 with the expected body.
    pub bad_responses: u64,
    /// Requests that got no response (socket errors).
    pub socket_errors: u64,
    pub p50_ms: Option<f64>,
    pub p99_ms: Option<f64>,
    pub max_ms: Option<f64>,
}

impl PacedRun {
    /// Figures over the requests due in `[from_us, to_us)`.
    pub fn latency(&self, from_us: u64, to_us: u64) -> Latency {
        let inside = |due: u64| due >= from_us && due < to_us;
        let mut lat: Vec<u64> = Vec::new();
        let mut bad = 0;
        for s in self.samples.iter().filter(|s| inside(s.due_us)) {
            lat.push(s.latency_us);
            bad += u64::from(!s.ok);
        }
        lat.sort_unstable();
        let ms = |us: Option<u64>| us.map(|u| u as f64 / 1000.0);
        Latency {
            requests: lat.len() as u64,
            bad_responses: bad,
            socket_errors: self.failures.iter().filter(|f| inside(f.due_us)).count() as u64,
            p50_ms: ms(percentile(&lat, 50.0)),
            p99_ms: ms(percentile(&lat, 99.0)),
            max_ms: ms(lat.last().copied()),
        }
    }

    /// Figures over the whole run.
    pub fn all(&self) -> Latency {
        self.latency(0, u64::MAX)
    }
}

/// A run in progress.
#[derive(Debug)]
pub struct Running {
    pub started: Instant,
    threads: Vec<JoinHandle<PacedRun>>,
}

impl Running {
    /// Waits for every connection's schedule to end and merges the results.
    pub fn join(self) -> Result<PacedRun> {
        let mut all = PacedRun::default();
        for t in self.threads {
            let part = t
                .join()
                .map_err(|_| anyhow::anyhow!("a load thread panicked"))?;
            all.samples.extend(part.samples);
            all.failures.extend(part.failures);
        }
        all.samples.sort_by_key(|s| s.due_us);
        Ok(all)
    }
}

/// The due times of connection `conn`'s requests, µs since the start: the
/// connections share the pace, staggered evenly within one period.
pub fn schedule(pace: &Pace, conn: usize) -> impl Iterator<Item = u64> {
    let conns = pace.connections.max(1) as u64;
    let period_us = conns * 1_000_000 / pace.rate.max(1);
    let offset = period_us * conn as u64 / conns;
    let end = u64::try_from(pace.duration.as_micros()).unwrap_or(u64::MAX);
    (0..)
        .map(move |k| offset + k * period_us.max(1))
        .take_while(move |due| *due < end)
}

/// Starts the connections; returns at once.
pub fn start(pace: &Pace) -> Result<Running> {
    let started = Instant::now();
    let mut threads = Vec::new();
    for conn in 0..pace.connections.max(1) {
        let pace = pace.clone();
        let t = std::thread::Builder::new()
            .name(format!("paced-{conn}"))
            .spawn(move || connection(&pace, conn, started))
            .context("starting a load thread")?;
        threads.push(t);
    }
    Ok(Running { started, threads })
}

fn connection(pace: &Pace, conn: usize, started: Instant) -> PacedRun {
    let request = format!("GET {} HTTP/1.1\r\nHost: {}\r\n\r\n", pace.path, pace.host);
    let step = Duration::from_secs(5);
    let mut run = PacedRun::default();
    let mut stream: Option<(TcpStream, BufReader<TcpStream>)> = None;
    for due_us in schedule(pace, conn) {
        let due = started + Duration::from_micros(due_us);
        if let Some(wait) = due.checked_duration_since(Instant::now()) {
            std::thread::sleep(wait);
        }
        let exchange = |stream: &mut Option<(TcpStream, BufReader<TcpStream>)>| -> Result<bool> {
            if stream.is_none() {
                let s = connect(pace.source, pace.port, step)?;
                s.set_nodelay(true)?;
                s.set_read_timeout(Some(step))?;
                s.set_write_timeout(Some(step))?;
                let reader = BufReader::new(s.try_clone()?);
                *stream = Some((s, reader));
            }
            let Some((writer, reader)) = stream.as_mut() else {
                anyhow::bail!("no connection");
            };
            writer.write_all(request.as_bytes())?;
            let resp = read_response(reader)?;
            let closes = resp
                .header("connection")
                .is_some_and(|v| v.eq_ignore_ascii_case("close"));
            if closes {
                *stream = None;
            }
            Ok(resp.status == 200 && resp.body.len() == pace.body_len)
        };
        match exchange(&mut stream) {
            Ok(ok) => {
                let latency = Instant::now().saturating_duration_since(due);
                run.samples.push(Sample {
                    due_us,
                    latency_us: u64::try_from(latency.as_micros()).unwrap_or(u64::MAX),
                    ok,
                });
            }
            Err(e) => {
                stream = None;
                run.failures.push(Failure {
                    due_us,
                    error: format!("{e:#}"),
                });
            }
        }
    }
    run
}

fn connect(source: Option<std::net::IpAddr>, port: u16, limit: Duration) -> Result<TcpStream> {
    let to = loopback(port);
    let Some(from) = source else {
        return Ok(TcpStream::connect_timeout(&to, limit)?);
    };
    let socket = socket2::Socket::new(
        socket2::Domain::for_address(to),
        socket2::Type::STREAM,
        None,
    )?;
    socket
        .bind(&std::net::SocketAddr::new(from, 0).into())
        .with_context(|| format!("binding {from}"))?;
    socket.connect_timeout(&to.into(), limit)?;
    Ok(socket.into())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pace(connections: usize, rate: u64, secs: u64) -> Pace {
        Pace {
            port: 1,
            host: "bench.example".into(),
            path: "/1k".into(),
            body_len: 1024,
            connections,
            rate,
            duration: Duration::from_secs(secs),
            source: None,
        }
    }

    #[test]
    fn the_schedule_spreads_the_rate_over_the_connections() {
        let p = pace(4, 400, 1);
        // 100 requests per connection per second, 10 ms apart, staggered 2.5 ms.
        let c0: Vec<u64> = schedule(&p, 0).collect();
        let c1: Vec<u64> = schedule(&p, 1).collect();
        assert_eq!(c0.len(), 100);
        assert_eq!(&c0[..3], &[0, 10_000, 20_000]);
        assert_eq!(&c1[..2], &[2_500, 12_500]);
        let total: usize = (0..4).map(|c| schedule(&p, c).count()).sum();
        assert_eq!(total, 400);
    }

    #[test]
    fn latency_over_a_window() {
        let mut run = PacedRun::default();
        for i in 0..200u64 {
            run.samples.push(Sample {
                due_us: i * 1000,
                // 1 ms, except 10 ms from 100 ms to 110 ms.
                latency_us: if (100..110).contains(&i) {
                    10_000
                } else {
                    1000
                },
                ok: i != 150,
            });
        }
        run.failures.push(Failure {
            due_us: 105_500,
            error: "reset".into(),
        });
        let all = run.all();
        assert_eq!(
            (all.requests, all.bad_responses, all.socket_errors),
            (200, 1, 1)
        );
        assert_eq!(all.p50_ms, Some(1.0));
        assert_eq!(all.p99_ms, Some(10.0));
        let before = run.latency(0, 100_000);
        assert_eq!((before.requests, before.p99_ms), (100, Some(1.0)));
        let window = run.latency(100_000, 120_000);
        assert_eq!((window.requests, window.socket_errors), (20, 1));
        assert_eq!((window.p99_ms, window.max_ms), (Some(10.0), Some(10.0)));
        assert_eq!(run.latency(500_000, 600_000), Latency::default());
    }

    #[test]
    fn a_refused_port_counts_failures_not_samples() -> Result<()> {
        // Bind and drop: nothing listens there a moment later.
        let port = crate::net::free_port()?;
        let p = Pace {
            port,
            ..pace(2, 40, 1)
        };
        let p = Pace {
            duration: Duration::from_millis(200),
            ..p
        };
        let run = start(&p)?.join()?;
        assert!(run.samples.is_empty());
        assert_eq!(run.failures.len(), 8);
        Ok(())
    }
}

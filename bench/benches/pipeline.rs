//! The full request pipeline in-process: a keep-alive HTTP/1.1 client, the proxy (listener,
//! canonical host, site lookup, header rewrite, origin pool) and a stub origin answering 1 KiB,
//! all on one current-thread runtime over loopback. It measures what one forwarded request costs
//! end to end in wall-clock time, kernel included; the load benchmark (`compare`) is the judge
//! of per-core cost, this one is for quick before/after checks of a change to the hot path.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use bytes::Bytes;
use criterion::{Criterion, criterion_group, criterion_main};
use http_body_util::{BodyExt, Empty, Full};
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;

const BODY: [u8; 1024] = [b'x'; 1024];

/// A stub origin: 200 with 1 KiB on every request, keep-alive.
async fn stub_origin() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind origin");
    let addr = listener.local_addr().expect("origin addr");
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let _ = stream.set_nodelay(true);
            tokio::spawn(async move {
                let svc = service_fn(|_req| async {
                    Ok::<_, Infallible>(hyper::Response::new(Full::new(Bytes::from_static(&BODY))))
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), svc)
                    .await;
            });
        }
    });
    addr
}

async fn start_proxy(origin: SocketAddr) -> SocketAddr {
    let yaml = format!(
        "listeners:\n  - address: \"127.0.0.1:0\"\nlogging:\n  access_log: false\nsites:\n  - name: bench\n    hosts: [\"bench.example\"]\n    origins: [\"http://{origin}\"]\n"
    );
    let cfg = portcullis::Config::from_yaml(&yaml, Path::new(".")).expect("bench config is valid");
    let proxy = portcullis::Proxy::bind(&cfg).await.expect("bind proxy");
    let addr = proxy.local_addrs()[0];
    tokio::spawn(proxy.run(std::future::pending(), Duration::from_secs(1)));
    addr
}

fn bench_pipeline(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let mut sender = rt.block_on(async {
        let origin = stub_origin().await;
        let proxy = start_proxy(origin).await;
        let stream = tokio::net::TcpStream::connect(proxy)
            .await
            .expect("connect");
        let _ = stream.set_nodelay(true);
        let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .expect("handshake");
        tokio::spawn(conn);
        sender
    });
    let mut group = c.benchmark_group("pipeline");
    group.bench_function("h1_keepalive_1k_get", |b| {
        b.iter(|| {
            rt.block_on(async {
                sender.ready().await.expect("connection ready");
                let req = hyper::Request::get("/1k")
                    .header("host", "bench.example")
                    .body(Empty::<Bytes>::new())
                    .expect("request");
                let resp = sender.send_request(req).await.expect("response");
                assert_eq!(resp.status(), 200);
                let body = resp.into_body().collect().await.expect("body").to_bytes();
                assert_eq!(body.len(), BODY.len());
            })
        })
    });
    group.finish();
}

criterion_group!(benches, bench_pipeline);
criterion_main!(benches);

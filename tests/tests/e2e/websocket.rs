//! HTTP/1.1 Upgrade: a WebSocket tunnelled end to end through the proxy.

use futures_util::{SinkExt, StreamExt};
use portcullis_tests::client::websocket;
use portcullis_tests::{Origin, Site, TestProxy, canned};
use tokio_tungstenite::tungstenite::Message;

use crate::{SHOP, shop};

#[tokio::test]
async fn websocket_echo_through_the_proxy() -> anyhow::Result<()> {
    let origin = Origin::websocket_echo().start().await?;
    let proxy = shop(&origin).start().await?;
    let mut ws = websocket(proxy.addr(), SHOP, "/ws").await?;
    let big: Vec<u8> = (0..=255u8).cycle().take(200_000).collect();
    let messages = [
        Message::text("hello through the gate"),
        Message::binary(vec![0u8, 1, 2, 254, 255]),
        Message::text("\u{1F3F0} unicode survives"),
        Message::binary(big),
    ];
    for msg in messages {
        ws.send(msg.clone()).await?;
        let back = ws
            .next()
            .await
            .ok_or_else(|| anyhow::anyhow!("tunnel closed"))??;
        assert_eq!(back, msg);
    }
    ws.close(None).await?;
    assert_eq!(origin.requests(), 1, "one upgrade request");
    Ok(())
}

#[tokio::test]
async fn websocket_to_an_h2_site_upgrades_over_http1() -> anyhow::Result<()> {
    // Upgrades need HTTP/1.1 end to end, so the proxy opens an HTTP/1.1 connection for them
    // even to an `h2: true` site (its origin speaks both, as hyper's auto server does).
    // Like most servers, this origin refuses an HTTP/1.1 request without Host (RFC 9112 §3.2).
    let origin = Origin::new(|req: http::Request<hyper::body::Incoming>| async move {
        if req.headers().contains_key("host") {
            canned::websocket_upgrade(req)
        } else {
            let mut r = http::Response::new(portcullis_tests::body::full("no Host header\n"));
            *r.status_mut() = http::StatusCode::BAD_REQUEST;
            r
        }
    })
    .h2c()
    .start()
    .await?;
    let proxy = TestProxy::new()
        .site(Site::new("shop", SHOP).origin(&origin.url()).h2())
        .start()
        .await?;
    let mut ws = websocket(proxy.addr(), SHOP, "/ws").await?;
    ws.send(Message::text("over an h2 site")).await?;
    let back = ws
        .next()
        .await
        .ok_or_else(|| anyhow::anyhow!("tunnel closed"))??;
    assert_eq!(back, Message::text("over an h2 site"));
    Ok(())
}

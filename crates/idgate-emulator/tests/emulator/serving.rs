//! `EmulatorBuilder::start_with`: the emulator's routes served by the caller's loop.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use idgate_emulator::Emulator;
use reqwest::StatusCode;

#[tokio::test]
async fn start_with_hands_the_listener_routes_and_shutdown_to_the_callers_loop() {
    let called = Arc::new(AtomicBool::new(false));
    let (done_tx, done_rx) = tokio::sync::oneshot::channel::<()>();
    let emu = Emulator::builder()
        .start_with({
            let called = Arc::clone(&called);
            move |listener, routes, shutdown| {
                called.store(true, Ordering::SeqCst);
                async move {
                    let served = axum::serve(listener, routes)
                        .with_graceful_shutdown(shutdown)
                        .await;
                    let _ = done_tx.send(());
                    served
                }
            }
        })
        .await
        .unwrap();
    assert!(called.load(Ordering::SeqCst));
    assert_eq!(
        reqwest::get(emu.oidc_jwks_url()).await.unwrap().status(),
        StatusCode::OK
    );
    // Shutting the emulator down resolves the signal, and the caller's loop returns.
    emu.shutdown().await;
    done_rx.await.unwrap();
}

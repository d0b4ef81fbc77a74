//! `delay` without an installed app is a clear error, not a panic; once an
//! app is installed, `delay` submits through it.

use std::time::Duration;

use bananas::{App, Error};

#[bananas::task]
async fn double(x: i32) -> i32 {
    x * 2
}

#[tokio::test]
async fn delay_needs_an_installed_app() {
    match double::delay(2).await {
        Err(Error::NoApp) => {}
        other => panic!("expected Error::NoApp, got {other:?}"),
    }
    assert!(Error::NoApp.to_string().contains("bananas::app::run()"));

    let app = App::builder().build().await.unwrap();
    app.install();
    let running = tokio::spawn(app.clone().run());
    let four = double::delay(2)
        .await
        .unwrap()
        .wait(Duration::from_secs(10))
        .await
        .unwrap();
    assert_eq!(four, 4);
    // The body can also be called directly, as a plain async fn.
    assert_eq!(double(21).await, 42);
    app.shutdown();
    running.await.unwrap().unwrap();
}

//! Two tasks with the same wire name: start-up fails naming both.

#[bananas::task(name = "resize")]
async fn resize_png(path: String) -> String {
    path
}

#[bananas::task(name = "resize")]
async fn resize_jpeg(path: String) -> String {
    path
}

#[tokio::test]
async fn duplicate_task_names_fail_start_up() {
    let err = bananas::App::builder().build().await.unwrap_err();
    let msg = err.to_string();
    assert!(msg.contains("duplicate task name `resize`"), "{msg}");
    assert!(
        msg.contains("resize_png") && msg.contains("resize_jpeg"),
        "{msg}"
    );
    assert!(msg.contains("duplicate_names.rs"), "{msg}");
    // The bodies still work on their own.
    assert_eq!(resize_png("a".into()).await, resize_jpeg("a".into()).await);
}

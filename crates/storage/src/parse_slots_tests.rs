//! Archive parses are bounded: with every parse slot taken, an upload waits for one.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use object_store::memory::InMemory;

use crate::{Registry, RegistryOptions};

const SEED_TEST1: &[u8] = include_bytes!("../../chartyard/tests/fixtures/test1.tgz");

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn uploads_wait_for_a_free_parse_slot() {
    let options = RegistryOptions { parse_concurrency: 1, ..RegistryOptions::default() };
    let registry = Arc::new(Registry::new(Arc::new(InMemory::new()), options));

    // Takes the only slot with work that runs until released.
    let (release, released) = std::sync::mpsc::channel::<()>();
    let busy = {
        let registry = registry.clone();
        tokio::spawn(async move {
            registry
                .blocking(move || {
                    let _ = released.recv();
                    Ok(())
                })
                .await
        })
    };
    while registry.parses.available_permits() > 0 {
        tokio::task::yield_now().await;
    }

    let upload = {
        let registry = registry.clone();
        tokio::spawn(async move { registry.upload("s", Bytes::from_static(SEED_TEST1)).await })
    };
    let mut upload = std::pin::pin!(upload);
    assert!(
        tokio::time::timeout(Duration::from_millis(300), &mut upload).await.is_err(),
        "the upload parsed its archive while no parse slot was free"
    );

    release.send(()).unwrap();
    busy.await.unwrap().unwrap();
    let stored = upload.await.unwrap().unwrap();
    assert_eq!(stored.chart, "test");
    assert_eq!(registry.parses.available_permits(), 1, "the slot is given back");
}

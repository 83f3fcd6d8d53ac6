use std::sync::Arc;

use hookd_types::Endpoint;

use super::*;
use crate::reads::OnBlockingPool;
use crate::store::Store;
use crate::testing::TempStore;

use crate::testing::endpoint;

fn registry(store: &Arc<dyn Store>) -> Arc<EndpointRegistry> {
    let writes = Arc::new(OnBlockingPool(store.clone()));
    Arc::new(EndpointRegistry::new(store.endpoints().unwrap(), writes))
}

#[tokio::test]
async fn concurrent_updates_each_see_the_last_and_none_is_lost() {
    let dir = TempStore::new();
    let store: Arc<dyn Store> = Arc::new(dir.open());
    let reg = registry(&store);
    let id = reg.insert(endpoint("e")).await.unwrap().id;

    let tasks: Vec<_> = (0..20)
        .map(|_| {
            let reg = reg.clone();
            tokio::spawn(async move {
                reg.update(id, |current| -> Result<Endpoint, crate::LogError> {
                    let mut next = current.clone();
                    next.description.push('x');
                    Ok(next)
                })
                .await
                .unwrap()
                .unwrap()
            })
        })
        .collect();
    for t in tasks {
        t.await.unwrap();
    }
    assert_eq!(reg.get(id).unwrap().description, "x".repeat(20));
    // What the store holds is what the registry shows, so a restart rebuilds it.
    let stored = store.endpoints().unwrap();
    assert_eq!(stored.len(), 1);
    assert_eq!(stored[0].description, "x".repeat(20));
    assert_eq!(
        registry(&store).get(id).unwrap().description,
        "x".repeat(20)
    );
}

#[tokio::test]
async fn a_removed_endpoint_is_gone_from_both_and_an_update_cannot_bring_it_back() {
    let dir = TempStore::new();
    let store: Arc<dyn Store> = Arc::new(dir.open());
    let reg = registry(&store);
    let id = reg.insert(endpoint("e")).await.unwrap().id;
    let mut matching = Vec::new();
    reg.matching("acme", "job.completed", &mut matching);
    assert_eq!(matching.len(), 1);

    assert!(reg.remove(id).await.unwrap());
    assert!(!reg.remove(id).await.unwrap(), "removed twice");
    let changed = reg
        .update(id, |current| -> Result<Endpoint, crate::LogError> {
            Ok(current.clone())
        })
        .await
        .unwrap();
    assert!(changed.is_none());
    assert!(reg.get(id).is_none());
    matching.clear();
    reg.matching("acme", "job.completed", &mut matching);
    assert!(matching.is_empty());
    assert!(store.endpoints().unwrap().is_empty());
}

//! The flows this runtime knows, by name and version and by content hash; it is also the
//! resolver of `run: workflow`.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use baton_core::{FlowResolver, Program};

#[derive(Default)]
pub struct FlowCatalog {
    by_hash: RwLock<HashMap<String, Arc<Program>>>,
    /// (namespace, name, version) -> newest registered program of that version.
    by_name: RwLock<HashMap<(String, String, String), Arc<Program>>>,
}

impl FlowCatalog {
    pub fn insert(&self, program: Arc<Program>) {
        let f = &program.flow;
        self.by_name
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .insert(
                (f.namespace.clone(), f.name.clone(), f.version.clone()),
                program.clone(),
            );
        self.by_hash
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .insert(f.hash.clone(), program);
    }

    /// The namespaces that have a flow called `name`, sorted.
    pub fn namespaces_of(&self, name: &str) -> Vec<String> {
        let mut out: Vec<String> = self
            .by_name
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .keys()
            .filter(|(_, n, _)| n == name)
            .map(|(ns, _, _)| ns.clone())
            .collect();
        out.sort();
        out.dedup();
        out
    }

    pub fn by_hash(&self, hash: &str) -> Option<Arc<Program>> {
        self.by_hash
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(hash)
            .cloned()
    }
}

impl FlowResolver for FlowCatalog {
    fn resolve(&self, namespace: &str, name: &str, version: &str) -> Option<Arc<Program>> {
        let map = self.by_name.read().unwrap_or_else(|p| p.into_inner());
        if version != "latest" {
            return map
                .get(&(namespace.to_string(), name.to_string(), version.to_string()))
                .cloned();
        }
        // "latest": the highest version by semantic-version order among those registered.
        map.iter()
            .filter(|((ns, n, _), _)| ns == namespace && n == name)
            .max_by(|a, b| semver_key(&a.0.2).cmp(&semver_key(&b.0.2)))
            .map(|(_, p)| p.clone())
    }
}

fn semver_key(v: &str) -> Vec<u64> {
    v.split(['.', '-', '+'])
        .map(|p| p.parse().unwrap_or(0))
        .collect()
}

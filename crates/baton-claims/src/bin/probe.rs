//! A second process over a SQLite store, for the cross-process claim test:
//! `release PATH ENTITY OWNER` releases `OWNER`'s holding of `ENTITY`, prints `released` and
//! exits (status 1, with the reason on stderr, when there was nothing of `OWNER`'s to release).

use std::sync::Arc;

use baton_api::SystemClock;
use baton_claims::{Claims, Released};
use baton_store::{SqliteOptions, SqliteStore};

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let ["release", path, entity, owner] = args.as_slice() else {
        eprintln!("usage: baton-claims-probe release PATH ENTITY OWNER");
        std::process::exit(2);
    };
    let store = Arc::new(SqliteStore::open(path, SqliteOptions::default()).expect("open"));
    let claims = Claims::new(store, Arc::new(SystemClock));
    match claims.release(entity, owner, None, "probe").await {
        Ok(Released::Released(_)) => println!("released"),
        other => {
            eprintln!("nothing released: {other:?}");
            std::process::exit(1);
        }
    }
}

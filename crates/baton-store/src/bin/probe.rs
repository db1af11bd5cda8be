//! A second process over a SQLite store, for the store's tests: `crash PATH` writes until it is
//! killed (see `baton_store::conformance::crash`); `put PATH KIND ID` opens the store, prints
//! `ready`, waits for a line on stdin, writes the document, prints `written` and exits; `open
//! PATH` prints `ready`, waits for a line, opens the store, writes one document and prints
//! `opened` (or `failed: reason`).

use std::io::BufRead as _;
use std::sync::Arc;

use baton_store::{DocStore, DocWrite, Expect, SqliteOptions, SqliteStore};

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let open =
        |path: &str| Arc::new(SqliteStore::open(path, SqliteOptions::default()).expect("open"));
    match args
        .iter()
        .map(String::as_str)
        .collect::<Vec<_>>()
        .as_slice()
    {
        ["crash", path] => baton_store::conformance::crash::write_until_killed(open(path)).await,
        ["put", path, kind, id] => {
            let store = open(path);
            println!("ready");
            let mut line = String::new();
            std::io::stdin().lock().read_line(&mut line).expect("stdin");
            store
                .put_doc(DocWrite {
                    kind: (*kind).into(),
                    id: (*id).into(),
                    status: "held".into(),
                    at_ms: 1,
                    body: serde_json::json!({"by": "probe"}),
                    expect: Expect::Any,
                })
                .await
                .expect("put");
            println!("written");
        }
        ["open", path] => {
            // Many of these start at once on one fresh file: each says `ready`, waits for `go`,
            // opens the store (creating and migrating it if it is the first) and writes one
            // document, so the opening and the first writes race as a script's processes would.
            println!("ready");
            let mut line = String::new();
            std::io::stdin().lock().read_line(&mut line).expect("stdin");
            match SqliteStore::open(path, SqliteOptions::default()) {
                Ok(store) => {
                    let id = std::process::id().to_string();
                    let put = store
                        .put_doc(DocWrite {
                            kind: "probe".into(),
                            id,
                            status: "open".into(),
                            at_ms: 1,
                            body: serde_json::json!({}),
                            expect: Expect::Absent,
                        })
                        .await;
                    match put {
                        Ok(_) => println!("opened"),
                        Err(e) => {
                            println!("failed: {e}");
                            std::process::exit(1);
                        }
                    }
                }
                Err(e) => {
                    println!("failed: {e}");
                    std::process::exit(1);
                }
            }
        }
        _ => {
            eprintln!("usage: baton-store-probe crash PATH | put PATH KIND ID | open PATH");
            std::process::exit(2);
        }
    }
}

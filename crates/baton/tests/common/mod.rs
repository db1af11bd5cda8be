//! What the CLI's server tests share: a real `baton serve` child process, started from a
//! command each test sets up (its store, configuration, catalogue, environment), read until it
//! says where it listens, and killed when dropped. Written once because every test that runs a
//! server needs the same start, stderr draining and clean-up.

// Each test file is its own crate and uses part of this module.
#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

/// A running `baton serve`; dropping it kills it, so a failed assertion leaves no server behind.
pub struct Server {
    pub child: Child,
    pub base: String,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Spawns `cmd` (a `baton serve ... --listen 127.0.0.1:0`) and returns once it says where it
/// listens (blocking, at most a minute). Its stderr is drained from then on, so the server
/// never blocks on a full pipe.
// The child is waited for by `Server`'s `Drop`, which clippy cannot see.
#[allow(clippy::zombie_processes)]
pub fn serve(mut cmd: Command) -> Server {
    let mut child = cmd
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = child.stderr.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    let mut seen = Vec::new();
    loop {
        let line = rx
            .recv_timeout(Duration::from_secs(60))
            .unwrap_or_else(|_| panic!("the server never said where it listens: {seen:?}"));
        if let Some(rest) = line.strip_prefix("baton serving on ") {
            let base = rest.split(':').take(3).collect::<Vec<_>>().join(":");
            std::thread::spawn(move || for _ in rx {});
            return Server { child, base };
        }
        seen.push(line);
    }
}

//! Stopping the server: on SIGTERM it stops accepting, lets uploads in flight finish within
//! `http.shutdowngrace`, and exits 0; nothing it acknowledged is lost, and nothing whose
//! bytes were cut off is acknowledged or stored.

use std::io::Read;
use std::sync::{Arc, Barrier};
use std::thread;
use std::time::{Duration, Instant};

use reqwest::blocking::Body;

use crate::common::{Server, chart_with_noise, client};

const UPLOADS: usize = 50;

/// A request body that arrives in `chunk`-byte pieces with a pause before each but the
/// first, as a slow client sends it.
struct Trickle {
    data: Vec<u8>,
    at: usize,
    chunk: usize,
    pause: Duration,
}

impl Read for Trickle {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        if self.at >= self.data.len() {
            return Ok(0);
        }
        if self.at > 0 {
            thread::sleep(self.pause);
        }
        let n = self.chunk.min(buf.len()).min(self.data.len() - self.at);
        buf[..n].copy_from_slice(&self.data[self.at..self.at + n]);
        self.at += n;
        Ok(n)
    }
}

/// What came of one upload: its archive, its status (none: no answer), and when the
/// answer came.
struct Upload {
    archive: Vec<u8>,
    status: Option<u16>,
    answered: Instant,
}

/// Starts `UPLOADS` ChartMuseum uploads of charts `c0..`, each trickling `pieces` pieces
/// `pause` apart, sends SIGTERM once all are under way, and answers the uploads, when the
/// signal was sent, and how the server ended.
fn uploads_then_sigterm(
    server: &mut Server,
    pieces: usize,
    pause: Duration,
) -> (Vec<Upload>, Instant, Option<std::process::ExitStatus>, Duration) {
    let started = Arc::new(Barrier::new(UPLOADS + 1));
    let url = server.url("/api/drain/charts");
    let threads: Vec<_> = (0..UPLOADS)
        .map(|i| {
            let (started, url) = (started.clone(), url.clone());
            thread::spawn(move || {
                let archive = chart_with_noise(&format!("c{i}"), "1.0.0", 32 * 1024);
                let chunk = archive.len().div_ceil(pieces);
                let body = Trickle { data: archive.clone(), at: 0, chunk, pause };
                let len = archive.len() as u64;
                started.wait();
                let response = client().post(&url).body(Body::sized(body, len)).send();
                Upload { archive, status: response.ok().map(|r| r.status().as_u16()), answered: Instant::now() }
            })
        })
        .collect();
    started.wait();
    // Every upload has its connection and first bytes in by now; the rest trickles.
    thread::sleep(Duration::from_millis(400));
    let signalled = Instant::now();
    let (status, took) = server.terminate(Duration::from_secs(60));
    let uploads = threads.into_iter().map(|t| t.join().unwrap()).collect();
    (uploads, signalled, status, took)
}

#[test]
fn sigterm_lets_uploads_in_flight_finish_and_exits_0() {
    let mut server = Server::start_with(&["--shutdown-grace", "20s"]);
    // Each body takes about a second to arrive, well inside the grace period.
    let (uploads, signalled, status, took) = uploads_then_sigterm(&mut server, 10, Duration::from_millis(100));
    let status = status.expect("the server exits on SIGTERM");
    assert!(status.success(), "exit status {status:?}");
    assert!(took < Duration::from_secs(20 + 15), "stopped {took:?} after SIGTERM, with a 20 s grace period");
    let acknowledged: Vec<&Upload> = uploads.iter().filter(|u| u.status == Some(201)).collect();
    let after = acknowledged.iter().filter(|u| u.answered > signalled).count();
    eprintln!("{} of {UPLOADS} uploads acknowledged, {after} of them after SIGTERM", acknowledged.len());
    assert_eq!(acknowledged.len(), UPLOADS, "every upload under way was let finish");
    assert!(after > 0, "uploads in flight were answered after the signal, not cut off");
    let unexpected: Vec<Option<u16>> = uploads.iter().map(|u| u.status).filter(|s| *s != Some(201)).collect();
    assert!(unexpected.is_empty(), "{unexpected:?}");

    // Started again on the same data: every acknowledged upload is there, byte for byte.
    server.restart();
    for (i, upload) in uploads.iter().enumerate() {
        assert_eq!(server.download("drain", &format!("c{i}"), "1.0.0"), upload.archive, "c{i}");
    }
}

#[test]
fn uploads_cut_off_by_the_grace_period_are_neither_acknowledged_nor_stored() {
    let mut server = Server::start_with(&["--shutdown-grace", "1s"]);
    // Each body would take about 4 s: none can arrive whole within the grace period.
    let (uploads, _, status, took) = uploads_then_sigterm(&mut server, 40, Duration::from_millis(100));
    let status = status.expect("the server exits on SIGTERM");
    assert!(status.success(), "exit status {status:?}");
    assert!(took < Duration::from_secs(1 + 15), "stopped {took:?} after SIGTERM, with a 1 s grace period");
    let acknowledged = uploads.iter().filter(|u| u.status == Some(201)).count();
    assert_eq!(acknowledged, 0, "an upload whose bytes were cut off was acknowledged");

    server.restart();
    for i in 0..UPLOADS {
        let stored = client().get(server.api(&format!("/spaces/drain/charts/c{i}/versions/1.0.0"))).send().unwrap();
        assert_eq!(stored.status(), 404, "c{i}, cut off, was stored");
    }
}

#[test]
fn a_stopping_server_says_it_is_not_ready_while_it_still_serves() {
    let mut server = Server::start_with(&["--shutdown-delay", "3s"]);
    let ready = client().get(server.url("/readyz")).send().unwrap();
    assert_eq!(ready.status(), 200);
    // SAFETY: kill(2) on our own child's pid has no memory effects.
    unsafe { libc::kill(server.pid() as libc::pid_t, libc::SIGTERM) };
    let deadline = Instant::now() + Duration::from_secs(3);
    let draining = loop {
        let answer = client().get(server.url("/readyz")).send().unwrap();
        if answer.status() == 503 {
            break answer.json::<serde_json::Value>().unwrap();
        }
        assert!(Instant::now() < deadline, "still ready after SIGTERM");
        thread::sleep(Duration::from_millis(20));
    };
    assert_eq!(draining["status"], "not ready", "{draining}");
    assert_eq!(draining["checks"]["draining"], true, "{draining}");
    // Still serving during the delay: liveness and ordinary requests.
    assert_eq!(client().get(server.url("/livez")).send().unwrap().status(), 200);
    assert_eq!(client().get(server.api("/spaces")).send().unwrap().status(), 200);
    let (status, _) = server.terminate(Duration::from_secs(30));
    assert!(status.expect("the server exits after the delay").success());
}

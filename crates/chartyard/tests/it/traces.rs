//! Traces over OTLP/HTTP: with `OTEL_EXPORTER_OTLP_ENDPOINT` set, the server sends its
//! request and storage spans to the collector it names, here a small receiver of the
//! test's own that records what is posted to it.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::common::{ChartBuilder, TempDir, binary, client, start_logged_process};

/// Requests posted to the receiver: path, content type and body.
type Received = Arc<Mutex<Vec<(String, String, Vec<u8>)>>>;

/// An HTTP server on loopback answering every request 200 with an empty body (an OTLP
/// export's success), keeping what was posted.
fn receiver() -> (String, Received) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let address = listener.local_addr().unwrap();
    let received: Received = Arc::default();
    let kept = received.clone();
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            let kept = kept.clone();
            std::thread::spawn(move || {
                let mut reader = BufReader::new(stream.try_clone().unwrap());
                let mut writer = stream;
                loop {
                    let mut line = String::new();
                    if reader.read_line(&mut line).unwrap_or(0) == 0 {
                        return;
                    }
                    let path = line.split_whitespace().nth(1).unwrap_or_default().to_string();
                    let (mut length, mut content_type) = (0usize, String::new());
                    loop {
                        let mut header = String::new();
                        reader.read_line(&mut header).unwrap();
                        let header = header.trim_end();
                        if header.is_empty() {
                            break;
                        }
                        let (name, value) = header.split_once(':').unwrap_or((header, ""));
                        match name.to_ascii_lowercase().as_str() {
                            "content-length" => length = value.trim().parse().unwrap_or(0),
                            "content-type" => content_type = value.trim().to_string(),
                            _ => {}
                        }
                    }
                    let mut body = vec![0; length];
                    reader.read_exact(&mut body).unwrap();
                    kept.lock().unwrap().push((path, content_type, body));
                    let answer = "HTTP/1.1 200 OK\r\ncontent-type: application/x-protobuf\r\ncontent-length: 0\r\n\r\n";
                    if writer.write_all(answer.as_bytes()).is_err() {
                        return;
                    }
                }
            });
        }
    });
    (format!("http://{address}"), received)
}

fn holds(haystack: &[u8], needle: &str) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle.as_bytes())
}

#[test]
fn request_and_storage_spans_reach_an_otlp_collector() {
    let (collector, received) = receiver();
    let data = TempDir::new("traces");
    let mut command = Command::new(binary());
    command
        .args(["serve", "--listen", "127.0.0.1:0", "--root-directory"])
        .arg(&data.path)
        .env("OTEL_EXPORTER_OTLP_ENDPOINT", &collector)
        .env("OTEL_SERVICE_NAME", "chartyard-under-test")
        .env("OTEL_BSP_SCHEDULE_DELAY", "100");
    let (mut child, base, _logs) = start_logged_process(command);
    let archive = ChartBuilder::new("traced", "1.0.0").build();
    let uploaded = client().post(format!("{base}/api/traces/charts")).body(archive).send().unwrap();
    assert_eq!(uploaded.status(), 201);
    assert_eq!(client().get(format!("{base}/traces/index.yaml")).send().unwrap().status(), 200);

    let deadline = Instant::now() + Duration::from_secs(30);
    let wanted = ["chartyard-under-test", "/api/traces/charts", "/traces/index.yaml", "storage"];
    loop {
        let posted = received.lock().unwrap().clone();
        let bodies: Vec<u8> = posted.iter().flat_map(|(_, _, body)| body.clone()).collect();
        let missing: Vec<&str> = wanted.iter().copied().filter(|w| !holds(&bodies, w)).collect();
        if missing.is_empty() {
            assert!(
                posted
                    .iter()
                    .all(|(path, content_type, _)| path == "/v1/traces" && content_type == "application/x-protobuf")
            );
            break;
        }
        assert!(
            Instant::now() < deadline,
            "no span naming {missing:?} arrived; posted: {:?}",
            posted.iter().map(|p| &p.0).collect::<Vec<_>>()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    // SAFETY: kill(2) on our own child's pid has no memory effects.
    unsafe { libc::kill(child.id() as libc::pid_t, libc::SIGTERM) };
    assert!(child.wait().unwrap().success());
}

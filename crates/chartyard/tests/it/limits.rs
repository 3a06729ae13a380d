//! Connection, time and memory bounds of the HTTP server, driven over raw sockets: clients
//! that stall or trickle their headers or bodies, hold connections open, stop reading,
//! or send more bodies at once than the server has room for. Every server here runs with
//! small limits so that the bounds are reached quickly; the assertions are about what
//! the client sees (a status, a closed connection), never about how long it took.

use std::io::{ErrorKind, Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use crate::common::{ChartBuilder, Server, client, json, noise};
use reqwest::blocking::multipart;
use serde_json::Value;

/// How long a test waits for the server before calling it stuck. The bounds under test
/// are far shorter; this only keeps a broken server from hanging the test run.
const PATIENCE: Duration = Duration::from_secs(60);

/// Bytes the server has not yet read from the loopback connections whose client ends are
/// `client_ports` (the receive queues of their server ends, from `/proc/net/tcp`); `None`
/// until every one is found.
fn unread_bytes_of(client_ports: &[u16]) -> Option<u64> {
    let table = std::fs::read_to_string("/proc/net/tcp").ok()?;
    let mut total = 0;
    for port in client_ports {
        let remote = format!("0100007F:{port:04X}");
        let line = table.lines().find(|line| line.split_whitespace().nth(2) == Some(remote.as_str()))?;
        let queues = line.split_whitespace().nth(4)?;
        total += u64::from_str_radix(queues.split(':').nth(1)?, 16).ok()?;
    }
    Some(total)
}

fn connect(server: &Server) -> TcpStream {
    let stream = TcpStream::connect(server.address()).unwrap();
    stream.set_read_timeout(Some(PATIENCE)).unwrap();
    stream.set_write_timeout(Some(PATIENCE)).unwrap();
    stream
}

/// An answer read off a raw connection.
#[derive(Debug)]
struct Answer {
    status: u16,
    head: String,
    body: Vec<u8>,
}

impl Answer {
    fn header(&self, name: &str) -> Option<String> {
        self.head.lines().skip(1).find_map(|line| {
            let (key, value) = line.split_once(':')?;
            key.trim().eq_ignore_ascii_case(name).then(|| value.trim().to_string())
        })
    }

    fn json(&self) -> Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("body is not JSON ({e}): {}", String::from_utf8_lossy(&self.body)))
    }
}

/// Reads one answer (head and a `Content-Length` body), skipping `100 Continue`.
fn read_answer(stream: &mut TcpStream) -> Answer {
    let mut buffer = Vec::new();
    loop {
        let end = loop {
            if let Some(end) = buffer.windows(4).position(|w| w == b"\r\n\r\n") {
                break end + 4;
            }
            let mut chunk = [0u8; 4096];
            let n = stream.read(&mut chunk).expect("the server answers before the patience runs out");
            assert!(n > 0, "connection closed before an answer; got {:?}", String::from_utf8_lossy(&buffer));
            buffer.extend_from_slice(&chunk[..n]);
        };
        let head = String::from_utf8_lossy(&buffer[..end]).to_string();
        buffer.drain(..end);
        let status: u16 = head.split_whitespace().nth(1).and_then(|s| s.parse().ok()).expect("a status line");
        if status == 100 {
            continue;
        }
        let mut answer = Answer { status, head, body: Vec::new() };
        let length: usize = answer.header("content-length").and_then(|v| v.parse().ok()).unwrap_or(0);
        while buffer.len() < length {
            let mut chunk = [0u8; 4096];
            let n = stream.read(&mut chunk).unwrap();
            assert!(n > 0, "connection closed inside the body");
            buffer.extend_from_slice(&chunk[..n]);
        }
        answer.body = buffer[..length].to_vec();
        return answer;
    }
}

/// Reads until the server closes the connection; panics if it is still open after the
/// patience runs out.
fn assert_closed(stream: &mut TcpStream) {
    let mut chunk = [0u8; 65536];
    loop {
        match stream.read(&mut chunk) {
            Ok(0) => return,
            Ok(_) => continue,
            Err(e) if matches!(e.kind(), ErrorKind::ConnectionReset | ErrorKind::ConnectionAborted) => return,
            Err(e) => panic!("the server kept the connection open ({e})"),
        }
    }
}

/// Waits for `100 Continue`: the server has admitted the request and started reading
/// its body.
fn expect_continue(stream: &mut TcpStream) {
    let mut seen = Vec::new();
    while !seen.ends_with(b"\r\n\r\n") {
        let mut byte = [0u8; 1];
        assert_eq!(stream.read(&mut byte).unwrap(), 1, "connection closed; got {:?}", String::from_utf8_lossy(&seen));
        seen.push(byte[0]);
    }
    let text = String::from_utf8_lossy(&seen);
    assert!(text.starts_with("HTTP/1.1 100"), "expected 100 Continue, got {text}");
}

const BOUNDARY: &str = "limits-test-boundary";

/// The start of a multipart upload (field `field`) that claims `length` bytes in all.
fn multipart_head(method: &str, path: &str, field: &str, length: usize, extra: &str) -> Vec<u8> {
    let mut request = format!(
        "{method} {path} HTTP/1.1\r\nHost: test\r\nContent-Type: multipart/form-data; boundary={BOUNDARY}\r\nContent-Length: {length}\r\n{extra}\r\n"
    )
    .into_bytes();
    request.extend_from_slice(
        format!(
            "--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"{field}\"; filename=\"chart.tgz\"\r\nContent-Type: application/gzip\r\n\r\n"
        )
        .as_bytes(),
    );
    request
}

/// A request that sends its head and the first bytes of its body, then nothing more.
fn stalled(server: &Server, request: &[u8]) -> TcpStream {
    let mut stream = connect(server);
    stream.write_all(request).unwrap();
    stream
}

#[test]
fn stalled_bodies_are_answered_408_and_their_connections_closed() {
    let server = Server::start_with(&["--body-idle-timeout", "1"]);
    let digest = format!("sha256:{}", "0".repeat(64));
    let cases: Vec<(&str, Vec<u8>, &str)> = vec![
        ("/api/v1 multipart upload", multipart_head("POST", "/api/v1/spaces/s/charts", "chartfile", 10_000, ""), "message"),
        (
            "/api/v1 replace",
            multipart_head("PUT", "/api/v1/spaces/s/charts/c/versions/1.0.0", "chartfile", 10_000, ""),
            "message",
        ),
        (
            "/api/v1 values",
            b"PUT /api/v1/spaces/s/charts/c/versions/1.0.0/manifests/values HTTP/1.1\r\nHost: test\r\nContent-Type: application/json\r\nContent-Length: 1000\r\n\r\n{\"a\":".to_vec(),
            "message",
        ),
        (
            "ChartMuseum raw upload",
            b"POST /api/s/charts HTTP/1.1\r\nHost: test\r\nContent-Length: 10000\r\n\r\n\x1f\x8b".to_vec(),
            "error",
        ),
        ("ChartMuseum multipart upload", multipart_head("POST", "/api/s/charts", "chart", 10_000, ""), "error"),
        (
            "ChartMuseum chunked upload",
            b"POST /api/s/charts HTTP/1.1\r\nHost: test\r\nTransfer-Encoding: chunked\r\n\r\n2\r\n\x1f\x8b\r\n".to_vec(),
            "error",
        ),
        (
            "OCI monolithic blob upload (streamed)",
            format!("POST /v2/s/c/blobs/uploads/?digest={digest} HTTP/1.1\r\nHost: test\r\nContent-Length: 10000\r\n\r\nxyz")
                .into_bytes(),
            "errors",
        ),
        (
            "OCI manifest",
            b"PUT /v2/s/c/manifests/1.0.0 HTTP/1.1\r\nHost: test\r\nContent-Type: application/vnd.oci.image.manifest.v1+json\r\nContent-Length: 1000\r\n\r\n{".to_vec(),
            "errors",
        ),
    ];
    let mut streams: Vec<_> = cases.iter().map(|(_, request, _)| stalled(&server, request)).collect();
    for ((case, _, field), stream) in cases.iter().zip(&mut streams) {
        let answer = read_answer(stream);
        assert_eq!(answer.status, 408, "{case}: {answer:?}");
        assert_eq!(answer.header("connection").as_deref(), Some("close"), "{case}");
        assert!(answer.json().get(field).is_some(), "{case}: error body in the API's shape: {:?}", answer.json());
        assert_closed(stream);
    }
    assert!(server.healthy());
    assert_eq!(json(server.get("/spaces"), 200)["metadata"]["total"], 0, "nothing was stored");
}

#[test]
fn a_body_that_trickles_forever_is_cut_at_the_request_deadline() {
    let server = Server::start_with(&["--request-timeout", "2", "--body-idle-timeout", "30"]);
    for head in [
        // chunked: no end announced at all
        "POST /api/s/charts HTTP/1.1\r\nHost: test\r\nTransfer-Encoding: chunked\r\n\r\n".to_string(),
        // a length that the trickle would take far longer than the deadline to reach
        format!(
            "POST /api/v1/spaces/s/charts HTTP/1.1\r\nHost: test\r\nContent-Type: multipart/form-data; boundary={BOUNDARY}\r\nContent-Length: 10000000\r\n\r\n"
        ),
    ] {
        let chunked = head.contains("chunked");
        let mut stream = connect(&server);
        stream.write_all(head.as_bytes()).unwrap();
        let mut writer = stream.try_clone().unwrap();
        // Keeps sending a little, often enough that the idle timeout never fires.
        let trickle = std::thread::spawn(move || {
            let started = Instant::now();
            while started.elapsed() < PATIENCE {
                let piece: &[u8] = if chunked { b"4\r\nabcd\r\n" } else { b"abcd" };
                if writer.write_all(piece).is_err() {
                    return true;
                }
                std::thread::sleep(Duration::from_millis(100));
            }
            false
        });
        let answer = read_answer(&mut stream);
        assert_eq!(answer.status, 408, "{head}: {answer:?}");
        assert_closed(&mut stream);
        assert!(trickle.join().unwrap(), "{head}: the server stopped taking the body");
    }
    assert!(server.healthy());
}

#[test]
fn slowloris_headers_are_cut_at_the_header_deadline() {
    let server = Server::start_with(&["--header-timeout", "1", "--keepalive-timeout", "60"]);
    let mut stream = connect(&server);
    stream.write_all(b"GET /health HTTP/1.1\r\nHost: test\r\n").unwrap();
    let mut writer = stream.try_clone().unwrap();
    // One more header line every 100 ms: the connection is never idle, its head never ends.
    let trickle = std::thread::spawn(move || {
        let started = Instant::now();
        while started.elapsed() < PATIENCE {
            if writer.write_all(b"X-Slow: yes\r\n").is_err() {
                return true;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        false
    });
    assert_closed(&mut stream);
    assert!(trickle.join().unwrap(), "the server kept reading the headers");
    assert!(server.healthy());
}

#[test]
fn idle_connections_are_closed_at_the_keepalive_deadline() {
    let server = Server::start_with(&["--keepalive-timeout", "1", "--header-timeout", "60"]);
    // A keep-alive connection after an answer, and one that never sent anything.
    let mut used = connect(&server);
    used.write_all(b"GET /health HTTP/1.1\r\nHost: test\r\n\r\n").unwrap();
    assert_eq!(read_answer(&mut used).status, 200);
    let mut silent = connect(&server);
    assert_closed(&mut used);
    assert_closed(&mut silent);
}

#[test]
fn a_client_that_stops_reading_an_answer_is_disconnected() {
    let server = Server::start_with(&["--keepalive-timeout", "1"]);
    // Larger than what loopback socket buffers hold, so the server's writes stall; made
    // of several files, each within the archive limits.
    let mut chart = ChartBuilder::new("big", "1.0.0");
    for n in 0..4 {
        chart = chart.file(&format!("big/files/noise{n}.bin"), noise(4_500_000, n));
    }
    let archive = chart.build();
    assert_eq!(server.upload("s", &archive).status(), 201);
    let mut stream = connect(&server);
    stream.write_all(b"GET /api/v1/spaces/s/charts/big/versions/1.0.0 HTTP/1.1\r\nHost: test\r\n\r\n").unwrap();
    let mut head = [0u8; 12];
    stream.read_exact(&mut head).unwrap();
    assert_eq!(&head, b"HTTP/1.1 200");
    // Reads nothing more for a while, then everything there is.
    std::thread::sleep(Duration::from_secs(4));
    let mut received = head.len();
    let mut chunk = vec![0u8; 1 << 20];
    loop {
        match stream.read(&mut chunk) {
            Ok(0) => break,
            Ok(n) => received += n,
            Err(e) if e.kind() == ErrorKind::ConnectionReset => break,
            Err(e) => panic!("the server kept the stalled download open ({e}) after {received} bytes"),
        }
    }
    assert!(received < archive.len(), "the whole archive arrived: the server waited for the reader");
    assert!(server.healthy());
}

/// A small multipart upload of a valid chart, as reqwest sends it.
fn upload(server: &Server, space: &str, name: &str) -> reqwest::blocking::Response {
    let archive = ChartBuilder::new(name, "1.0.0").build();
    let form = multipart::Form::new().part("chartfile", multipart::Part::bytes(archive).file_name("chart.tgz"));
    client().post(server.api(&format!("/spaces/{space}/charts"))).multipart(form).send().unwrap()
}

#[test]
fn bodies_beyond_the_memory_budget_are_refused_with_503_and_health_still_answers() {
    // Room for two of the largest bodies.
    let server =
        Server::start_with(&["--max-upload-size", "131072", "--max-body-memory", "262144", "--body-idle-timeout", "3"]);
    let path = "/api/v1/spaces/s/charts";
    let mut holders: Vec<TcpStream> = (0..2)
        .map(|_| {
            let head = multipart_head("POST", path, "chartfile", 131_072, "Expect: 100-continue\r\n");
            let mut stream = connect(&server);
            // The head only: the body follows once the server asks for it.
            let split = head.windows(4).position(|w| w == b"\r\n\r\n").unwrap() + 4;
            stream.write_all(&head[..split]).unwrap();
            expect_continue(&mut stream);
            stream.write_all(&head[split..]).unwrap();
            stream
        })
        .collect();

    let refused = upload(&server, "s", "late");
    assert_eq!(refused.status(), 503);
    assert!(refused.headers().get("retry-after").is_some(), "{:?}", refused.headers());
    let body: Value = refused.json().unwrap();
    assert_eq!(body["reason"], "ReasonInternal", "{body}");
    let cm =
        client().post(server.url("/api/s/charts")).body(ChartBuilder::new("late", "1.0.0").build()).send().unwrap();
    assert_eq!(cm.status(), 503);
    assert!(cm.json::<Value>().unwrap()["error"].is_string());
    // Requests without a body are not held back.
    assert!(server.healthy());
    assert_eq!(json(server.get("/spaces"), 200)["metadata"]["total"], 0);

    // Once the stalled bodies time out, their room is free again.
    for stream in &mut holders {
        assert_eq!(read_answer(stream).status, 408);
    }
    assert_eq!(upload(&server, "s", "late").status(), 201);
}

#[test]
fn chunked_bodies_are_counted_as_they_arrive() {
    let server = Server::start_with(&[
        "--max-upload-size",
        "131072",
        "--max-body-memory",
        "262144",
        "--body-idle-timeout",
        "20",
    ]);
    // Two chunked uploads send almost the largest body each, then stall (for long enough
    // that a busy machine still sees the third request while they hold the budget).
    let mut holders: Vec<TcpStream> = (0..2)
        .map(|_| {
            let mut stream = connect(&server);
            let piece = vec![b'x'; 127 * 1024];
            let mut request =
                b"POST /api/s/charts HTTP/1.1\r\nHost: test\r\nTransfer-Encoding: chunked\r\n\r\n".to_vec();
            request.extend_from_slice(format!("{:x}\r\n", piece.len()).as_bytes());
            request.extend_from_slice(&piece);
            request.extend_from_slice(b"\r\n");
            stream.write_all(&request).unwrap();
            stream
        })
        .collect();
    // A third body sent while a holder's bytes are still arriving could take the room
    // the holder's last bytes need (and the holder would be refused instead): first let
    // the server read everything the holders sent.
    let local: Vec<u16> = holders.iter().map(|h| h.local_addr().unwrap().port()).collect();
    let read_all = Instant::now();
    while unread_bytes_of(&local) != Some(0) {
        assert!(read_all.elapsed() < PATIENCE, "the server never read the holders' bodies");
        std::thread::sleep(Duration::from_millis(20));
    }
    // A third body no longer fits once the server has read theirs. It is not a chart,
    // so while it does fit it is refused as invalid, never stored.
    let started = Instant::now();
    let status = loop {
        let response = client().post(server.url("/api/s/charts")).body(vec![b'y'; 8 * 1024]).send().unwrap();
        let status = response.status().as_u16();
        if status != 400 || started.elapsed() > PATIENCE {
            break status;
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    assert_eq!(status, 503);
    assert!(server.healthy());
    for stream in &mut holders {
        assert_eq!(read_answer(stream).status, 408);
    }
    let response = client().post(server.url("/api/s/charts")).body(vec![b'y'; 8 * 1024]).send().unwrap();
    assert_eq!(response.status(), 400, "room is free again");
}

/// How many sockets a process holds (Linux).
fn sockets_of(pid: u32) -> Option<usize> {
    let entries = std::fs::read_dir(format!("/proc/{pid}/fd")).ok()?;
    Some(
        entries
            .filter_map(|e| std::fs::read_link(e.ok()?.path()).ok())
            .filter(|target| target.to_string_lossy().starts_with("socket:"))
            .count(),
    )
}

#[test]
fn connections_beyond_the_limit_take_the_place_of_idle_ones() {
    // Long timeouts: what frees room here is the limit's own rule, not a deadline.
    let server = Server::start_with(&["--max-connections", "4", "--header-timeout", "60", "--keepalive-timeout", "60"]);
    let before = sockets_of(server.pid());
    // Twelve connections that never send a request: each new one beyond the limit
    // closes the one that has waited longest.
    let mut silent: Vec<TcpStream> = (0..12).map(|_| connect(&server)).collect();
    assert!(server.healthy(), "a health check gets a place at once");
    if let (Some(before), Some(now)) = (before, sockets_of(server.pid())) {
        assert!(now <= before + 4, "the server holds {now} sockets ({before} before): more than the limit");
    }
    // The oldest ones were closed to make room.
    for stream in &mut silent[..8] {
        assert_closed(stream);
    }
}

/// A multipart upload of `archive` in field `chartfile`: its head (asking for
/// `100 Continue`) and its body.
fn upload_in_parts(path: &str, archive: &[u8]) -> (Vec<u8>, Vec<u8>) {
    let opening = format!(
        "--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"chartfile\"; filename=\"chart.tgz\"\r\nContent-Type: application/gzip\r\n\r\n"
    );
    let closing = format!("\r\n--{BOUNDARY}--\r\n");
    let mut body = opening.into_bytes();
    body.extend_from_slice(archive);
    body.extend_from_slice(closing.as_bytes());
    let head = format!(
        "POST {path} HTTP/1.1\r\nHost: test\r\nContent-Type: multipart/form-data; boundary={BOUNDARY}\r\nContent-Length: {}\r\nExpect: 100-continue\r\n\r\n",
        body.len()
    );
    (head.into_bytes(), body)
}

#[test]
fn connections_with_requests_in_progress_are_never_closed_to_make_room() {
    let server = Server::start_with(&[
        "--max-connections",
        "2",
        "--header-timeout",
        "60",
        "--keepalive-timeout",
        "60",
        "--body-idle-timeout",
        "60",
    ]);
    // Both places are taken by uploads whose bodies have not been sent yet.
    let uploads: Vec<(TcpStream, Vec<u8>)> = ["one", "two"]
        .iter()
        .map(|name| {
            let (head, body) = upload_in_parts("/api/v1/spaces/s/charts", &ChartBuilder::new(name, "1.0.0").build());
            let mut stream = connect(&server);
            stream.write_all(&head).unwrap();
            expect_continue(&mut stream);
            (stream, body)
        })
        .collect();
    // More connections arrive; they wait, since no place holds an idle connection.
    let _waiting: Vec<TcpStream> = (0..5).map(|_| connect(&server)).collect();
    std::thread::sleep(Duration::from_millis(300));
    for (mut stream, body) in uploads {
        stream.write_all(&body).unwrap();
        assert_eq!(read_answer(&mut stream).status, 201);
    }
    assert!(server.healthy());
    assert_eq!(json(server.get("/spaces/s/charts"), 200)["metadata"]["total"], 2);
}

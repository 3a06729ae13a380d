#!/usr/bin/env python3
"""Hostile clients for bench/abuse.sh (loopback only; every loop is bounded in time).

  abuse.py bodies    PORT PID COUNT SIZE SENT HOLD
      COUNT connections each announce a SIZE-byte upload, send SENT bytes of it, then
      stall for up to HOLD seconds waiting for the server's answer.
  abuse.py slowloris PORT PID COUNT DURATION INTERVAL
      COUNT connections send a request line and then one header line every INTERVAL
      seconds, never ending the head; a connection the server closes is opened again at
      the next tick. Runs DURATION seconds.

Both check GET /health while the load is on and print one JSON line: the answers the
hostile connections got, the health checks (answered, slowest in ms) and the server's
peak RSS (VmHWM of /proc/PID/status) in MiB.
"""

import collections
import http.client
import json
import os
import socket
import sys
import threading
import time

HOST = "127.0.0.1"


def peak_rss_mib(pid):
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmHWM:"):
                return round(int(line.split()[1]) / 1024, 1)
    return None


def health(port, timeout=10.0):
    """Milliseconds until GET /health answered 200, or None."""
    started = time.monotonic()
    try:
        connection = http.client.HTTPConnection(HOST, port, timeout=timeout)
        connection.request("GET", "/health")
        ok = connection.getresponse().status == 200
        connection.close()
    except OSError:
        return None
    return round((time.monotonic() - started) * 1000, 1) if ok else None


def probe(port, until, pause, results):
    """Checks /health every `pause` seconds until the monotonic time `until`, appending
    each result (ms or None) to `results`."""
    while time.monotonic() < until:
        results.append(health(port))
        time.sleep(pause)


def summary(results):
    answered = [r for r in results if r is not None]
    return {"checks": len(results), "answered": len(answered), "slowest_ms": max(answered, default=None)}


def read_status(sock, timeout):
    """The status code of the first answer on sock, or why there is none."""
    sock.settimeout(timeout)
    data = b""
    try:
        while b"\r\n" not in data:
            chunk = sock.recv(4096)
            if not chunk:
                return "closed"
            data += chunk
    except socket.timeout:
        return "no answer"
    except OSError:
        return "reset"
    return data.split(b" ", 2)[1].decode()


def bodies(port, pid, count, size, sent, hold):
    boundary = "abuse"
    opening = (
        f"--{boundary}\r\nContent-Disposition: form-data; name=\"chartfile\"; "
        f"filename=\"c.tgz\"\r\nContent-Type: application/gzip\r\n\r\n"
    ).encode()
    head = (
        f"POST /api/v1/spaces/abuse/charts HTTP/1.1\r\nHost: {HOST}\r\n"
        f"Content-Type: multipart/form-data; boundary={boundary}\r\nContent-Length: {size}\r\n\r\n"
    ).encode()
    payload = memoryview(opening + os.urandom(sent - len(opening)))
    outcomes = collections.Counter()
    sent_all = threading.Barrier(count + 1, timeout=hold + 120)
    lock = threading.Lock()

    def client():
        sock = socket.create_connection((HOST, port), timeout=30)
        outcome = None
        try:
            sock.sendall(head)
            for start in range(0, len(payload), 1 << 16):
                sock.sendall(payload[start:start + (1 << 16)])
        except OSError:
            outcome = "refused while sending"
        try:
            sent_all.wait()
        except threading.BrokenBarrierError:
            pass
        if outcome is None:
            outcome = read_status(sock, hold)
        else:
            # The server may have answered before it closed.
            answer = read_status(sock, 1)
            if answer.isdigit():
                outcome = answer
        sock.close()
        with lock:
            outcomes[outcome] += 1

    threads = [threading.Thread(target=client, daemon=True) for _ in range(count)]
    for thread in threads:
        thread.start()
    sent_all.wait()
    # Every connection has sent what it will send and now stalls.
    checks = []
    probe(port, time.monotonic() + 5, 1.0, checks)
    rss_stalled = peak_rss_mib(pid)
    for thread in threads:
        thread.join(hold + 30)
    return {
        "load": f"{count} connections x {sent >> 20} MiB of a {size >> 20} MiB body, then stalled",
        "answers": dict(outcomes),
        "health_while_stalled": summary(checks),
        "health_after": health(port) is not None,
        "peak_rss_mib": max(rss_stalled, peak_rss_mib(pid)),
    }


def slowloris(port, pid, count, duration, interval):
    socks = {}
    stats = collections.Counter()
    head = f"GET /health HTTP/1.1\r\nHost: {HOST}\r\n".encode()

    def open_one():
        try:
            sock = socket.create_connection((HOST, port), timeout=2)
            sock.sendall(head)
            sock.setblocking(False)
            stats["opened"] += 1
            return sock
        except OSError:
            stats["connect failed"] += 1
            return None

    deadline = time.monotonic() + duration
    for i in range(count):
        socks[i] = open_one()
    health_results = []
    prober = threading.Thread(target=probe, args=(port, deadline - 10, 2.0, health_results), daemon=True)
    prober.start()
    most_open = 0
    while time.monotonic() < deadline:
        tick = time.monotonic() + interval
        for i, sock in list(socks.items()):
            if sock is None:
                socks[i] = open_one()
                continue
            try:
                try:
                    if not sock.recv(4096):
                        raise ConnectionError("closed")
                except BlockingIOError:
                    pass
                sock.send(b"X-Slow: yes\r\n")
            except OSError:
                stats["closed by server"] += 1
                sock.close()
                socks[i] = None
        most_open = max(most_open, sum(1 for s in socks.values() if s is not None))
        time.sleep(max(0.0, min(tick, deadline) - time.monotonic()))
    prober.join(15)
    for sock in socks.values():
        if sock is not None:
            sock.close()
    return {
        "load": f"{count} slowloris connections, a header line every {interval}s, for {duration}s",
        "connections": dict(stats),
        "most_open_at_once_client_side": most_open,
        "health_during": summary(list(health_results)),
        "peak_rss_mib": peak_rss_mib(pid),
    }


def main():
    mode, port, pid = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    numbers = [float(a) for a in sys.argv[4:]]
    if mode == "bodies":
        count, size, sent, hold = (int(n) for n in numbers)
        result = bodies(port, pid, count, size, sent, hold)
    elif mode == "slowloris":
        count, duration, interval = int(numbers[0]), numbers[1], numbers[2]
        result = slowloris(port, pid, count, duration, interval)
    else:
        sys.exit(f"unknown mode {mode}")
    print(json.dumps(result))


if __name__ == "__main__":
    main()

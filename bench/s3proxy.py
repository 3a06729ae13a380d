#!/usr/bin/env python3
"""A small HTTP/1.1 proxy between chartyard and an S3 server (moto) for bench/replicas.sh.

It forwards every request's bytes unchanged (the Host header included, so the signature
chartyard computed for the proxy's address still covers what the S3 server gets) over one
upstream connection per client connection, streams bodies (Content-Length or chunked) and
keeps both connections alive. It can add a fixed delay before each request, as a distant
bucket would, and counts requests by kind: GET, HEAD, PUT, POST, DELETE, and LIST (a GET
with `list-type` in its query, the ListObjectsV2 call).

Requests under /_proxy/ are answered by the proxy itself, never forwarded:
  GET /_proxy/counts        {"GET": n, "HEAD": n, "PUT": n, "POST": n, "DELETE": n, "LIST": n,
                             "OTHER": n, "total": n, "delay_ms": n}
  PUT /_proxy/delay?ms=N    sets the delay for requests that arrive from now on
SIGUSR1 writes the counts to stderr.

Usage: s3proxy.py --listen PORT --upstream HOST:PORT [--delay-ms MS]   (standard library only)
"""

import argparse
import asyncio
import json
import signal
import sys
from urllib.parse import parse_qs, urlsplit

KINDS = ("GET", "HEAD", "PUT", "POST", "DELETE", "LIST", "OTHER")
COUNTS = dict.fromkeys(KINDS, 0)
STATE = {"delay": 0.0}
CHUNK = 64 * 1024
HEAD_LIMIT = 1 << 20


class Closed(Exception):
    """The peer closed its connection between messages."""


def counts():
    return {**COUNTS, "total": sum(COUNTS.values()), "delay_ms": round(STATE["delay"] * 1000)}


def kind_of(method, target):
    query = urlsplit(target).query
    if method == "GET" and "list-type" in parse_qs(query, keep_blank_values=True):
        return "LIST"
    return method if method in COUNTS else "OTHER"


async def read_head(reader):
    """One message head: (start line, [(name, value)], raw bytes); Closed at a clean EOF."""
    try:
        raw = await reader.readuntil(b"\r\n\r\n")
    except asyncio.IncompleteReadError as e:
        if not e.partial:
            raise Closed() from None
        raise
    lines = raw[:-4].decode("latin-1").split("\r\n")
    headers = []
    for line in lines[1:]:
        name, _, value = line.partition(":")
        headers.append((name.strip().lower(), value.strip()))
    return lines[0], headers, raw


def header(headers, name):
    for key, value in headers:
        if key == name:
            return value
    return None


def wants_close(headers, version):
    connection = (header(headers, "connection") or "").lower()
    return "close" in connection or (version == "HTTP/1.0" and "keep-alive" not in connection)


async def copy_exact(reader, writer, remaining):
    while remaining:
        data = await reader.read(min(CHUNK, remaining))
        if not data:
            raise ConnectionError("connection closed inside a body")
        writer.write(data)
        await writer.drain()
        remaining -= len(data)


async def copy_chunked(reader, writer):
    while True:
        line = await reader.readuntil(b"\r\n")
        writer.write(line)
        size = int(line.split(b";")[0].strip(), 16)
        if size == 0:
            while True:  # trailers, up to the empty line
                trailer = await reader.readuntil(b"\r\n")
                writer.write(trailer)
                if trailer == b"\r\n":
                    await writer.drain()
                    return
        await copy_exact(reader, writer, size + 2)


async def copy_body(reader, writer, headers):
    """Copies a body framed by its headers (none without Content-Length or chunking)."""
    if "chunked" in (header(headers, "transfer-encoding") or "").lower():
        await copy_chunked(reader, writer)
    elif header(headers, "content-length") is not None:
        await copy_exact(reader, writer, int(header(headers, "content-length")))


async def answer_locally(writer, method, target):
    url = urlsplit(target)
    if url.path == "/_proxy/counts":
        status, body = "200 OK", counts()
    elif url.path == "/_proxy/delay" and method == "PUT":
        STATE["delay"] = float(parse_qs(url.query).get("ms", ["0"])[0]) / 1000
        status, body = "200 OK", counts()
    else:
        status, body = "404 Not Found", {"error": "unknown proxy path"}
    data = json.dumps(body).encode()
    writer.write(
        f"HTTP/1.1 {status}\r\nContent-Type: application/json\r\nContent-Length: {len(data)}\r\n\r\n".encode() + data
    )
    await writer.drain()


class Upstream:
    """The S3 server connection paired with one client connection, opened on demand."""

    def __init__(self, host, port):
        self.host, self.port = host, port
        self.reader = self.writer = None

    async def open(self):
        if self.writer is None or self.writer.is_closing() or self.reader.at_eof():
            self.close()
            self.reader, self.writer = await asyncio.open_connection(self.host, self.port, limit=HEAD_LIMIT)
        return self.reader, self.writer

    def close(self):
        if self.writer is not None:
            self.writer.close()
        self.reader = self.writer = None


async def serve_client(client_reader, client_writer, upstream_host, upstream_port):
    upstream = Upstream(upstream_host, upstream_port)
    try:
        while True:
            try:
                start, headers, raw = await read_head(client_reader)
            except Closed:
                return
            method, target, version = start.split(" ", 2)
            if target.startswith("/_proxy/"):
                await answer_locally(client_writer, method, target)
                continue
            COUNTS[kind_of(method, target)] += 1
            if STATE["delay"]:
                await asyncio.sleep(STATE["delay"])
            up_reader, up_writer = await upstream.open()
            up_writer.write(raw)
            if (header(headers, "expect") or "").lower() == "100-continue":
                # Let the client send its body at once; the upstream's own interim
                # answer is skipped below.
                client_writer.write(b"HTTP/1.1 100 Continue\r\n\r\n")
                await client_writer.drain()
            await copy_body(client_reader, up_writer, headers)
            await up_writer.drain()

            while True:
                status_line, response_headers, response_raw = await read_head(up_reader)
                status = int(status_line.split(" ", 2)[1])
                if not 100 <= status < 200:
                    break
            has_body = method != "HEAD" and status >= 200 and status not in (204, 304)
            framed = not has_body or any(
                name in ("content-length", "transfer-encoding") for name, _ in response_headers
            )
            upstream_closes = wants_close(response_headers, status_line.split(" ", 1)[0])
            client_closes = wants_close(headers, version) or not framed
            if upstream_closes and framed and not client_closes:
                # Keep the client's connection: drop the upstream's `Connection: close`
                # and open a new upstream connection for the next request instead.
                lines = response_raw[:-4].split(b"\r\n")
                response_raw = b"\r\n".join(l for l in lines if not l.lower().startswith(b"connection:")) + b"\r\n\r\n"
            client_writer.write(response_raw)
            if has_body:
                if framed:
                    await copy_body(up_reader, client_writer, response_headers)
                else:
                    while data := await up_reader.read(CHUNK):
                        client_writer.write(data)
                        await client_writer.drain()
            await client_writer.drain()
            if upstream_closes or not framed:
                upstream.close()
            if client_closes:
                return
    except (ConnectionError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, ValueError) as e:
        print(f"s3proxy: connection dropped: {e!r}", file=sys.stderr)
    finally:
        upstream.close()
        client_writer.close()


async def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--listen", type=int, required=True, help="port on 127.0.0.1")
    parser.add_argument("--upstream", required=True, help="HOST:PORT of the S3 server")
    parser.add_argument("--delay-ms", type=float, default=0)
    args = parser.parse_args()
    STATE["delay"] = args.delay_ms / 1000
    host, _, port = args.upstream.rpartition(":")
    loop = asyncio.get_running_loop()
    loop.add_signal_handler(signal.SIGUSR1, lambda: print(json.dumps(counts()), file=sys.stderr, flush=True))
    server = await asyncio.start_server(
        lambda r, w: serve_client(r, w, host, int(port)), "127.0.0.1", args.listen, limit=HEAD_LIMIT, backlog=1024
    )
    async with server:
        await server.serve_forever()


if __name__ == "__main__":
    try:
        asyncio.run(main())
    except KeyboardInterrupt:
        pass

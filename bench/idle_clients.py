#!/usr/bin/env python3
"""Open N idle PostgreSQL client connections to a pooler and measure its memory per client.

Used by bench/pgbench.sh; standard library only, so it runs on any python3 >= 3.10.

Each connection does what a real driver does: a v3 StartupMessage, then the server's choice of
SCRAM-SHA-256 (RFC 5802/7677, as libpq speaks it), md5 or cleartext, then waits for
ReadyForQuery. The connection is then left open and idle. When all N are up, the pooler's
VmRSS (from /proc/PID/status) is compared with its value before the first connection:

    bytes per idle client = (VmRSS with N idle - VmRSS before) / N

Raw non-blocking sockets driven by asyncio keep this process small (no per-connection
stream objects), so 10,000 connections fit in one process. The SCRAM salted password is
computed once per (salt, iterations) and reused, as a pooler that stores a SCRAM secret sends
the same salt every time; without that, 10,000 PBKDF2 runs would dominate the run time.

Prints one line of key=value pairs on stdout, which pgbench.sh parses: ok, failed, dropped,
rss_before_kib, rss_after_kib, bytes_per_client, login_seconds (see bench/README.md); and the
first few errors on stderr. Exit status: 0 if every connection logged in and stayed
open, 1 otherwise, 2 on bad arguments.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import hashlib
import hmac
import os
import resource
import socket
import struct
import sys
import time

PROTOCOL_V3 = 196608
# Authentication request codes (the int32 after 'R').
AUTH_OK, AUTH_CLEARTEXT, AUTH_MD5 = 0, 3, 5
AUTH_SASL, AUTH_SASL_CONTINUE, AUTH_SASL_FINAL = 10, 11, 12


class LoginError(Exception):
    """A connection that did not reach ReadyForQuery, with the reason in one line."""


def read_rss_kib(pid: int) -> int:
    """The resident memory of process `pid` in KiB, or -1 if it is gone."""
    try:
        with open(f"/proc/{pid}/status") as status:
            for line in status:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
    except FileNotFoundError:
        pass
    print(f"idle_clients: process {pid} is not running", file=sys.stderr)
    return -1


def message(kind: bytes, body: bytes) -> bytes:
    return kind + struct.pack("!I", len(body) + 4) + body


def error_text(body: bytes) -> str:
    """Severity, SQLSTATE and message of an ErrorResponse body."""
    fields = {}
    for part in body.split(b"\0"):
        if part:
            fields[part[:1]] = part[1:].decode("utf-8", "replace")
    return f"{fields.get(b'S', 'ERROR')} {fields.get(b'C', '?????')}: {fields.get(b'M', '')}"


class Scram:
    """Client side of SCRAM-SHA-256 without channel binding, as libpq does it."""

    salted_cache: dict[tuple[bytes, bytes, int], bytes] = {}

    def __init__(self, password: str):
        self.password = password.encode()
        self.nonce = base64.b64encode(os.urandom(18)).decode()
        # libpq sends an empty user name: the server uses the one from the startup packet.
        self.client_first_bare = f"n=,r={self.nonce}"
        self.expected_server_signature = b""

    def client_first(self) -> bytes:
        return ("n,," + self.client_first_bare).encode()

    def client_final(self, server_first: bytes) -> bytes:
        attrs = dict(item.split("=", 1) for item in server_first.decode().split(","))
        nonce, salt, iterations = attrs["r"], base64.b64decode(attrs["s"]), int(attrs["i"])
        if not nonce.startswith(self.nonce):
            raise LoginError("SCRAM: server nonce does not extend the client nonce")
        key = (self.password, salt, iterations)
        salted = self.salted_cache.get(key)
        if salted is None:
            salted = hashlib.pbkdf2_hmac("sha256", self.password, salt, iterations)
            self.salted_cache[key] = salted
        client_key = hmac.digest(salted, b"Client Key", "sha256")
        stored_key = hashlib.sha256(client_key).digest()
        without_proof = f"c=biws,r={nonce}"
        auth_message = f"{self.client_first_bare},{server_first.decode()},{without_proof}".encode()
        signature = hmac.digest(stored_key, auth_message, "sha256")
        proof = bytes(a ^ b for a, b in zip(client_key, signature, strict=True))
        server_key = hmac.digest(salted, b"Server Key", "sha256")
        self.expected_server_signature = hmac.digest(server_key, auth_message, "sha256")
        return f"{without_proof},p={base64.b64encode(proof).decode()}".encode()

    def check_server_final(self, server_final: bytes) -> None:
        attrs = dict(item.split("=", 1) for item in server_final.decode().split(","))
        if "e" in attrs:
            raise LoginError(f"SCRAM: server error {attrs['e']}")
        if base64.b64decode(attrs.get("v", "")) != self.expected_server_signature:
            raise LoginError("SCRAM: wrong server signature")


class Conn:
    """One client socket with a receive buffer, read one backend message at a time."""

    def __init__(self, sock: socket.socket, loop: asyncio.AbstractEventLoop):
        self.sock, self.loop, self.buf = sock, loop, bytearray()

    async def send(self, data: bytes) -> None:
        await self.loop.sock_sendall(self.sock, data)

    async def recv_message(self) -> tuple[bytes, bytes]:
        while True:
            if len(self.buf) >= 5:
                length = struct.unpack_from("!I", self.buf, 1)[0]
                if length < 4 or length > 1 << 20:
                    raise LoginError(f"malformed message length {length}")
                if len(self.buf) >= 1 + length:
                    kind, body = bytes(self.buf[:1]), bytes(self.buf[5 : 1 + length])
                    del self.buf[: 1 + length]
                    return kind, body
            chunk = await self.loop.sock_recv(self.sock, 8192)
            if not chunk:
                raise LoginError("server closed the connection during login")
            self.buf += chunk


async def login(args: argparse.Namespace, loop: asyncio.AbstractEventLoop) -> socket.socket:
    """Connects and authenticates; returns the open socket once ReadyForQuery arrives."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setblocking(False)
    try:
        await loop.sock_connect(sock, (args.host, args.port))
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        conn = Conn(sock, loop)
        params = {"user": args.user, "database": args.dbname, "application_name": "idle_clients"}
        body = struct.pack("!I", PROTOCOL_V3)
        body += b"".join(k.encode() + b"\0" + v.encode() + b"\0" for k, v in params.items()) + b"\0"
        await conn.send(struct.pack("!I", len(body) + 4) + body)
        scram = None
        while True:
            kind, body = await conn.recv_message()
            if kind == b"E":
                raise LoginError(error_text(body))
            if kind == b"Z":
                return sock
            if kind != b"R":
                continue  # ParameterStatus, BackendKeyData, NoticeResponse
            code = struct.unpack_from("!I", body)[0]
            if code == AUTH_OK:
                continue
            if code == AUTH_SASL:
                mechanisms = body[4:].split(b"\0")
                if b"SCRAM-SHA-256" not in mechanisms:
                    raise LoginError(f"no SCRAM-SHA-256 among {mechanisms}")
                scram = Scram(args.password)
                first = scram.client_first()
                payload = b"SCRAM-SHA-256\0" + struct.pack("!I", len(first)) + first
                await conn.send(message(b"p", payload))
            elif code == AUTH_SASL_CONTINUE and scram:
                await conn.send(message(b"p", scram.client_final(body[4:])))
            elif code == AUTH_SASL_FINAL and scram:
                scram.check_server_final(body[4:])
            elif code == AUTH_MD5:
                inner = hashlib.md5((args.password + args.user).encode()).hexdigest()
                outer = hashlib.md5(inner.encode() + body[4:8]).hexdigest()
                await conn.send(message(b"p", b"md5" + outer.encode() + b"\0"))
            elif code == AUTH_CLEARTEXT:
                await conn.send(message(b"p", args.password.encode() + b"\0"))
            else:
                raise LoginError(f"unsupported authentication request {code}")
    except BaseException:
        sock.close()
        raise


def count_closed(socks: list[socket.socket]) -> int:
    """Connections the pooler closed while they sat idle (EOF or error on a non-blocking read)."""
    closed = 0
    for sock in socks:
        try:
            if sock.recv(1, socket.MSG_PEEK) == b"":
                closed += 1
        except BlockingIOError:
            pass
        except OSError:
            closed += 1
    return closed


async def run(args: argparse.Namespace) -> int:
    loop = asyncio.get_running_loop()
    rss_before = read_rss_kib(args.pid) if args.pid else 0
    gate = asyncio.Semaphore(args.concurrency)
    socks: list[socket.socket] = []
    errors: list[str] = []

    async def one() -> None:
        async with gate:
            try:
                socks.append(await asyncio.wait_for(login(args, loop), args.login_timeout))
            except asyncio.TimeoutError:
                errors.append(f"login timed out after {args.login_timeout:g} s")
            except (OSError, LoginError, ValueError, KeyError, struct.error) as exc:
                errors.append(str(exc) or type(exc).__name__)

    started = time.monotonic()
    await asyncio.gather(*(one() for _ in range(args.count)))
    login_seconds = time.monotonic() - started
    # Let the pooler finish any bookkeeping for the last logins before sampling its memory.
    await asyncio.sleep(args.settle)
    rss_after = read_rss_kib(args.pid) if args.pid else 0
    dropped = count_closed(socks)
    for sock in socks:
        sock.close()

    for text in sorted(set(errors))[:5]:
        print(f"idle_clients: {errors.count(text)} x {text}", file=sys.stderr)
    sampled = args.pid and rss_before >= 0 and rss_after >= 0
    per_client = (rss_after - rss_before) * 1024 / len(socks) if socks and sampled else 0.0
    print(
        f"ok={len(socks)} failed={len(errors)} dropped={dropped} "
        f"rss_before_kib={rss_before} rss_after_kib={rss_after} "
        f"bytes_per_client={per_client:.1f} login_seconds={login_seconds:.1f}"
    )
    return 0 if not errors and not dropped and (sampled or not args.pid) else 1


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--user", required=True)
    parser.add_argument("--password", default=os.environ.get("PGPASSWORD", ""))
    parser.add_argument("--dbname", required=True)
    parser.add_argument("--count", type=int, default=10000, help="idle clients to open")
    parser.add_argument("--pid", type=int, default=0, help="pooler process whose VmRSS to sample")
    parser.add_argument("--concurrency", type=int, default=64, help="logins in flight at once")
    parser.add_argument("--login-timeout", type=float, default=30.0, help="seconds per login")
    parser.add_argument("--settle", type=float, default=1.0, help="seconds before sampling RSS")
    args = parser.parse_args()

    # One descriptor per client plus a few for the event loop.
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    need = args.count + 64
    if soft < need:
        if hard != resource.RLIM_INFINITY and hard < need:
            parser.error(
                f"--count {args.count} needs {need} file descriptors; hard limit is {hard}"
            )
        resource.setrlimit(resource.RLIMIT_NOFILE, (need, hard))
    return asyncio.run(run(args))


if __name__ == "__main__":
    sys.exit(main())

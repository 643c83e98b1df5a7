"""Console relay: throughput each way, small-message latency and memory with a slow reader.

Each figure is printed beside its reference from the same run, as a ratio (these shared
machines vary 2x between runs):

- MB/s down (target → browser) and up (browser → target) through our relay (websockify
  subclass, run as in a lab: its own process on a unix socket, SPICE side on a unix socket)
  vs the same transfer straight over a unix socket. "up, inputs channel" is the worst case
  for our input watching: every byte is parsed as SPICE messages.
- round trip of an 8-byte message through the relay vs direct (p50/p95 over many).
- relay memory (PSS of parent + per-connection children, so shared pages of the forks count
  once) while a target floods a reader that takes one frame every 20 ms: its peak over the
  run vs its value 1 s in. Must stay flat (~1.0): websockify only reads from the target
  when the browser side can take more.

The target is a small unix-socket server in a separate process; the "browser" is
websocket-client (a Python client: its own cost is part of the relay figures).
Usage: ``python bench/bench_console_relay.py [--mib 128]``.
"""

import argparse
import contextlib
import multiprocessing
import os
import shutil
import socket
import struct
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import websocket

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from tests.console.parts import link_message  # noqa: E402

CHUNK = 64 * 1024
COMMAND = struct.Struct("<4sQ")
DISPLAY, INPUTS = 2, 3


# --- the target: what sits where QEMU's SPICE socket would -------------------------------


def recv_exact(sock, n):
    data = bytearray()
    while len(data) < n:
        chunk = sock.recv(n - len(data))
        if not chunk:
            raise EOFError
        data += chunk
    return bytes(data)


def serve_target(path):
    """Per connection: read the SPICE link, then a command: SINK n, SRCE n, ECHO, FLOD."""
    listener = socket.socket(socket.AF_UNIX)
    listener.bind(path)
    listener.listen(16)
    while True:
        conn, _ = listener.accept()
        if os.fork() == 0:
            listener.close()
            with contextlib.suppress(EOFError, OSError):
                handle(conn)
            os._exit(0)
        conn.close()
        with contextlib.suppress(ChildProcessError):
            while os.waitpid(-1, os.WNOHANG)[0]:
                pass


def handle(conn):
    header = recv_exact(conn, 16)
    recv_exact(conn, struct.unpack_from("<I", header, 12)[0])
    mode, n = COMMAND.unpack(recv_exact(conn, COMMAND.size))
    if mode == b"SINK":
        left = n
        while left:
            got = conn.recv(min(left, 1 << 20))
            if not got:
                raise EOFError
            left -= len(got)
        conn.sendall(b"K")
    elif mode == b"SRCE":
        block = b"\x55" * CHUNK
        left = n
        while left:
            conn.sendall(block[: min(left, CHUNK)])
            left -= min(left, CHUNK)
        conn.recv(1)
    elif mode == b"ECHO":
        while data := conn.recv(CHUNK):
            conn.sendall(data)
    elif mode == b"FLOD":
        block = b"\x55" * CHUNK
        while True:
            conn.sendall(block)


# --- clients: direct unix socket and websocket through the relay ---------------------------


class Direct:
    def __init__(self, target, channel, mode, n=0):
        self.s = socket.socket(socket.AF_UNIX)
        self.s.connect(target)
        self.s.sendall(link_message(channel) + COMMAND.pack(mode, n))

    def send(self, data):
        self.s.sendall(data)

    def recv(self):
        data = self.s.recv(CHUNK)
        if not data:
            raise EOFError
        return data

    def close(self):
        self.s.close()


class ViaRelay:
    def __init__(self, relay_sock, channel, mode, n=0):
        sock = socket.socket(socket.AF_UNIX)
        sock.connect(relay_sock)
        self.ws = websocket.create_connection(
            "ws://localhost/websockify", socket=sock, subprotocols=["binary"]
        )
        self.ws.send(link_message(channel) + COMMAND.pack(mode, n), websocket.ABNF.OPCODE_BINARY)

    def send(self, data):
        self.ws.send(data, websocket.ABNF.OPCODE_BINARY)

    def recv(self):
        return self.ws.recv()

    def close(self):
        self.ws.close()


class ViaProxyChain:
    """The path a browser's console takes: CHP → jupyter-server-proxy → our relay."""

    def __init__(self, chp_port, token, channel, mode, n=0):
        self.ws = websocket.create_connection(
            f"ws://127.0.0.1:{chp_port}/console/websockify",
            header=[f"Authorization: token {token}"],
            subprotocols=["binary"],
        )
        self.ws.send(link_message(channel) + COMMAND.pack(mode, n), websocket.ABNF.OPCODE_BINARY)

    send = ViaRelay.send
    recv = ViaRelay.recv
    close = ViaRelay.close


def start_proxy_chain(tmp: Path, env: dict) -> tuple[int, str, list[subprocess.Popen]]:
    """A jupyter-server with server-proxy and our console entry, behind CHP (all loopback).

    It stands in for jupyterhub-singleuser (the same server-proxy and entry; the hub's OAuth
    check happens once per connection, not per byte).
    """
    token = os.urandom(16).hex()
    server_port, chp_port, api_port = (free_port() for _ in range(3))
    server_env = {
        **env,
        "BLABS_LAB_WORKDIR": str(tmp),
        "JUPYTER_CONFIG_DIR": str(REPO / "blabs_hub" / "lab" / "jupyter_config"),
        "JUPYTER_RUNTIME_DIR": str(tmp / "runtime"),
        "JUPYTER_DATA_DIR": str(tmp / "data"),
    }
    server = subprocess.Popen(
        [str(Path(sys.executable).parent / "jupyter-server"), "--ServerApp.ip=127.0.0.1",
         f"--ServerApp.port={server_port}", "--ServerApp.port_retries=0",
         f"--IdentityProvider.token={token}", "--ServerApp.open_browser=False",
         "--ServerApp.allow_root=True", f"--ServerApp.root_dir={tmp}"],
        env=server_env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    chp = subprocess.Popen(
        [str(REPO / "node_modules" / ".bin" / "configurable-http-proxy"), "--ip", "127.0.0.1",
         "--port", str(chp_port), "--api-ip", "127.0.0.1", "--api-port", str(api_port),
         "--default-target", f"http://127.0.0.1:{server_port}", "--log-level", "warn"],
        env={**env, "CONFIGPROXY_AUTH_TOKEN": os.urandom(16).hex()},
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            ViaProxyChain(chp_port, token, DISPLAY, b"ECHO").close()
            return chp_port, token, [server, chp]
        except (OSError, websocket.WebSocketException):
            time.sleep(0.3)
    raise SystemExit("the CHP → server-proxy → relay chain did not come up")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def up(make, n):
    c = make(b"SINK", n)
    block = b"\xaa" * CHUNK
    start = time.perf_counter()
    left = n
    while left:
        c.send(block[: min(left, CHUNK)])
        left -= min(left, CHUNK)
    assert c.recv() == b"K"
    elapsed = time.perf_counter() - start
    c.close()
    return n / elapsed / 1e6


def down(make, n):
    c = make(b"SRCE", n)
    start = time.perf_counter()
    got = 0
    while got < n:
        got += len(c.recv())
    elapsed = time.perf_counter() - start
    c.send(b"x")
    c.close()
    return n / elapsed / 1e6


def round_trips(make, count):
    c = make(b"ECHO", 0)
    message = b"12345678"
    times = []
    for _ in range(count):
        start = time.perf_counter()
        c.send(message)
        got = b""
        while len(got) < len(message):
            got += c.recv()
        times.append(time.perf_counter() - start)
    c.close()
    times.sort()
    return times[len(times) // 2] * 1e3, times[int(len(times) * 0.95)] * 1e3


def pss_mib(pids):
    """Proportional set size: forked children share the parent's pages; count them once."""
    total = 0
    for pid in pids:
        with contextlib.suppress(OSError), open(f"/proc/{pid}/smaps_rollup") as f:
            for line in f:
                if line.startswith("Pss:"):
                    total += int(line.split()[1])
    return total / 1024


def relay_pids(pid):
    pids, todo = [], [pid]
    while todo:
        p = todo.pop()
        pids.append(p)
        try:
            with open(f"/proc/{p}/task/{p}/children") as f:
                todo.extend(int(c) for c in f.read().split())
        except OSError:
            pass
    return pids


def slow_reader(relay_sock, relay_pid, seconds):
    """Relay memory (PSS, parent + children) 1 s into a flood and at its peak afterwards."""
    idle = pss_mib(relay_pids(relay_pid))
    c = ViaRelay(relay_sock, DISPLAY, b"FLOD")
    start = time.monotonic()
    early = peak = 0.0
    got = 0
    while (elapsed := time.monotonic() - start) < seconds:
        got += len(c.recv())
        time.sleep(0.02)
        now = pss_mib(relay_pids(relay_pid))
        if elapsed < 1:
            early = max(early, now)
        else:
            peak = max(peak, now)
    c.close()
    return idle, early, peak, got / seconds / 1e6


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mib", type=int, default=128, help="MiB per throughput run")
    parser.add_argument("--round-trips", type=int, default=2000)
    parser.add_argument("--slow-seconds", type=float, default=10)
    args = parser.parse_args()
    n = args.mib * 1024 * 1024

    tmp = Path(tempfile.mkdtemp(prefix="blbench-", dir="/tmp"))
    target = str(tmp / "spice.sock")
    relay_sock = str(tmp / "relay.sock")
    target_proc = multiprocessing.get_context("fork").Process(
        target=serve_target, args=(target,), daemon=True
    )
    target_proc.start()
    env = {k: v for k, v in os.environ.items() if not k.startswith("JUPYTERHUB_")}
    relay = subprocess.Popen(
        [sys.executable, "-m", "blabs_hub.lab.console.relay", "--unix-listen", relay_sock,
         "--workdir", str(tmp), "--unix-target", target],
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 10
        while not (os.path.exists(relay_sock) and os.path.exists(target)):
            if time.monotonic() > deadline:
                raise SystemExit("relay or target did not start")
            time.sleep(0.05)

        def direct(channel):
            return lambda mode, size=0: Direct(target, channel, mode, size)

        def relayed(channel):
            return lambda mode, size=0: ViaRelay(relay_sock, channel, mode, size)

        chp_port, token, chain = start_proxy_chain(tmp, env)

        def chained(channel):
            return lambda mode, size=0: ViaProxyChain(chp_port, token, channel, mode, size)

        print(f"console relay benchmark ({args.mib} MiB per run; ratio = relay / direct)")
        rows = [
            ("down MB/s", down(direct(DISPLAY), n), down(relayed(DISPLAY), n)),
            ("up MB/s (display channel)", up(direct(DISPLAY), n), up(relayed(DISPLAY), n)),
            ("up MB/s (inputs channel, parsed)", up(direct(INPUTS), n), up(relayed(INPUTS), n)),
        ]
        for name, ref, got in rows:
            print(f"  {name:34s} relay {got:9.1f}   direct {ref:9.1f}   ratio {got / ref:6.2f}")
        print("  through CHP → jupyter-server-proxy → relay, as a browser's console goes:")
        rows = [
            ("down MB/s", down(direct(DISPLAY), n), down(chained(DISPLAY), n)),
            ("up MB/s (inputs channel, parsed)", up(direct(INPUTS), n), up(chained(INPUTS), n)),
        ]
        for name, ref, got in rows:
            print(f"  {name:34s} chain {got:9.1f}   direct {ref:9.1f}   ratio {got / ref:6.2f}")
        c50, c95 = round_trips(chained(DISPLAY), args.round_trips)
        d50, d95 = round_trips(direct(DISPLAY), args.round_trips)
        r50, r95 = round_trips(relayed(DISPLAY), args.round_trips)
        print(
            f"  {'8-byte round trip p50 ms':34s} relay {r50:9.3f}   direct {d50:9.3f}"
            f"   ratio {r50 / d50:6.1f}   (added {r50 - d50:.3f} ms)"
        )
        print(
            f"  {'8-byte round trip p95 ms':34s} relay {r95:9.3f}   direct {d95:9.3f}"
            f"   ratio {r95 / d95:6.1f}   (added {r95 - d95:.3f} ms)"
        )
        print(
            f"  {'8-byte round trip p50 ms, chain':34s} chain {c50:9.3f}   direct {d50:9.3f}"
            f"   ratio {c50 / d50:6.1f}   (added {c50 - d50:.3f} ms)"
        )
        print(
            f"  {'8-byte round trip p95 ms, chain':34s} chain {c95:9.3f}   direct {d95:9.3f}"
            f"   ratio {c95 / d95:6.1f}   (added {c95 - d95:.3f} ms)"
        )
        for process in chain:
            process.terminate()
            process.wait(10)
        idle, early, peak, rate = slow_reader(relay_sock, relay.pid, args.slow_seconds)
        print(
            f"  {'relay PSS MiB, slow reader':34s} peak  {peak:9.1f}   at 1 s {early:8.1f}"
            f"   ratio {peak / early:6.2f}   (idle {idle:.1f}; reader took {rate:.1f} MB/s"
            f" for {args.slow_seconds:.0f} s from a target that never stops writing)"
        )
    finally:
        relay.terminate()
        relay.wait(10)
        target_proc.terminate()
        target_proc.join(5)
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()

"""Real parts for console tests: QEMU with SPICE on a unix socket, the relay, a tiny SPICE
client over websockets, a loopback HTTP peer standing in for the hub's activity endpoint.

Every process is started here and stopped by its own PID; every listener is a unix socket
or 127.0.0.1.
"""

import contextlib
import json
import os
import shutil
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import websocket  # websocket-client
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding

from blabs_hub.lab.spec import LabPaths
from tests.harness import free_port, stop_pid, wait_for  # noqa: F401 (free_port: for the suites)

QEMU = "qemu-system-x86_64"


def short_tmpdir(prefix: str) -> Path:
    """A folder short enough for unix socket paths (sun_path is 108 bytes)."""
    return Path(tempfile.mkdtemp(prefix=prefix, dir="/tmp"))


def unix_accepts(path: Path) -> bool:
    with socket.socket(socket.AF_UNIX) as s:
        try:
            s.connect(str(path))
        except OSError:
            return False
        return True


class Qemu:
    """A minimal machine (SeaBIOS, qxl) whose SPICE server listens on the lab's unix socket."""

    def __init__(self, lab: LabPaths):
        self.lab = lab
        self.process: subprocess.Popen | None = None

    def argv(self) -> list[str]:
        return [
            QEMU,
            "-nodefaults",
            "-machine", "pc",
            "-accel", "tcg",
            "-m", "128",
            "-vga", "qxl",
            "-display", "none",
            "-spice", f"unix=on,addr={self.lab.spice_socket},disable-ticketing=on",
            "-device", "virtio-serial",
            "-chardev", "spicevmc,id=vdagent,name=vdagent",
            "-device", "virtserialport,chardev=vdagent,name=com.redhat.spice.0",
        ]  # fmt: skip

    def start(self) -> "Qemu":
        log = open(self.lab.workdir / "qemu.log", "wb")  # noqa: SIM115 - lives with the process
        self.process = subprocess.Popen(self.argv(), stdout=log, stderr=subprocess.STDOUT)
        try:
            wait_for(lambda: unix_accepts(self.lab.spice_socket), 15, "QEMU's SPICE socket")
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self) -> None:
        if self.process is not None:
            stop_pid(self.process.pid)
            self.process.wait(5)


class Relay:
    """Our console relay as its own process (``python -m blabs_hub.lab.console.relay``)."""

    def __init__(self, lab: LabPaths, env: dict | None = None, port: int | None = None,
                 activity_interval: float = 1.0):  # fmt: skip
        self.lab = lab
        self.port = port
        self.listen = lab.workdir / "relay.sock"
        self.env = {**os.environ, **(env or {})}
        self.activity_interval = activity_interval
        self.process: subprocess.Popen | None = None
        self.log_path = lab.workdir / "relay.log"

    def start(self) -> "Relay":
        where = ["--port", str(self.port)] if self.port else ["--unix-listen", str(self.listen)]
        argv = [sys.executable, "-m", "blabs_hub.lab.console.relay", *where,
                "--workdir", str(self.lab.workdir),
                "--activity-interval", str(self.activity_interval)]  # fmt: skip
        log = open(self.log_path, "wb")  # noqa: SIM115 - lives with the process
        self.process = subprocess.Popen(argv, env=self.env, stdout=log, stderr=subprocess.STDOUT)
        try:
            if self.port:
                wait_for(lambda: tcp_accepts(self.port), 15, "the relay's port")
            else:
                wait_for(lambda: unix_accepts(self.listen), 15, "the relay's socket")
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self) -> None:
        if self.process is not None:
            stop_pid(self.process.pid)
            self.process.wait(5)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")


def tcp_accepts(port: int) -> bool:
    with socket.socket() as s:
        try:
            s.connect(("127.0.0.1", port))
        except OSError:
            return False
        return True


# --- the hub's activity endpoint, as a real loopback HTTP peer ---------------------------


class ActivitySink:
    """Records ``POST /hub/api/users/<name>/activity`` requests: method, path, headers, JSON."""

    def __init__(self):
        self.posts: list[dict] = []
        self.lock = threading.Lock()
        sink = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                with sink.lock:
                    sink.posts.append(
                        {
                            "path": self.path,
                            "authorization": self.headers.get("Authorization"),
                            "body": json.loads(body),
                            "at": time.time(),
                        }
                    )
                self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def api_url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/hub/api"

    def env(self, user="student", server_name="lab-1", token="server-token-123") -> dict:  # noqa: S107
        return {
            "JUPYTERHUB_API_URL": self.api_url,
            "JUPYTERHUB_ACTIVITY_URL": f"{self.api_url}/users/{user}/activity",
            "JUPYTERHUB_USER": user,
            "JUPYTERHUB_SERVER_NAME": server_name,
            "JUPYTERHUB_API_TOKEN": token,
            "JUPYTERHUB_BASE_URL": "/",
        }

    def snapshot(self) -> list[dict]:
        with self.lock:
            return list(self.posts)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.server.shutdown()
        self.server.server_close()


# --- a small SPICE client over websockets ------------------------------------------------

MINI = struct.Struct("<HI")
CAPS = (1 << 0) | (1 << 3)  # PROTOCOL_AUTH_SELECTION | MINI_HEADER


def link_message(channel_type: int, connection_id: int = 0, channel_id: int = 0,
                 common_caps: tuple = (CAPS,), channel_caps: tuple = ()) -> bytes:  # fmt: skip
    caps = struct.pack(f"<{len(common_caps) + len(channel_caps)}I", *common_caps, *channel_caps)
    mess = struct.pack(
        "<IBBIII", connection_id, channel_type, channel_id, len(common_caps),
        len(channel_caps), 18,
    ) + caps  # fmt: skip
    return struct.pack("<4sIII", b"REDQ", 2, 2, len(mess)) + mess


def ticket(public_key_der: bytes) -> bytes:
    """Auth mechanism SPICE + an RSA-OAEP encrypted empty password.

    spice-server decrypts the ticket even with ``disable-ticketing=on`` (then ignores it),
    so it must be a real encryption with the key from the link reply, as spice-html5 does.
    """
    key = serialization.load_der_public_key(public_key_der)
    oaep = padding.OAEP(mgf=padding.MGF1(hashes.SHA1()), algorithm=hashes.SHA1(), label=None)  # noqa: S303
    return struct.pack("<I", 1) + key.encrypt(b"\0", oaep)


def mini(msg_type: int, body: bytes = b"") -> bytes:
    return MINI.pack(msg_type, len(body)) + body


class SpiceChannel:
    """One SPICE channel through the relay's websocket, the way spice-html5 speaks it."""

    def __init__(self, connect, channel_type: int, connection_id: int = 0):
        self.ws = connect()
        self.buf = bytearray()
        self.received = 0
        self.ack_window = 0
        self.unacked = 0
        self.send(link_message(channel_type, connection_id))
        magic, _major, _minor, size = struct.unpack("<4sIII", self.read(16))
        assert magic == b"REDQ", magic
        reply = self.read(size)
        assert struct.unpack_from("<I", reply)[0] == 0, "link refused"
        self.send(ticket(reply[4 : 4 + 162]))
        assert struct.unpack("<I", self.read(4))[0] == 0, "auth refused"

    def send(self, data: bytes) -> None:
        self.ws.send(data, opcode=websocket.ABNF.OPCODE_BINARY)

    def read(self, n: int) -> bytes:
        while len(self.buf) < n:
            chunk = self.ws.recv()
            self.received += len(chunk)
            self.buf += chunk
        data = bytes(self.buf[:n])
        del self.buf[:n]
        return data

    def message(self) -> tuple[int, bytes]:
        """The next server message; answers SET_ACK/PING and acks like a real client."""
        msg_type, size = MINI.unpack(self.read(MINI.size))
        body = self.read(size)
        if msg_type == 3:  # SET_ACK: generation, window → ACK_SYNC(generation)
            generation, self.ack_window = struct.unpack_from("<II", body)
            self.send(mini(1, struct.pack("<I", generation)))
        elif msg_type == 4:  # PING → PONG(id, timestamp)
            self.send(mini(3, body[:12]))
        if self.ack_window:
            self.unacked += 1
            if self.unacked >= self.ack_window:
                self.send(mini(2))
                self.unacked = 0
        return msg_type, body

    def pump(self, seconds: float) -> int:
        """Read and answer server messages for a while; returns bytes received meanwhile."""
        start = self.received
        deadline = time.monotonic() + seconds
        self.ws.settimeout(0.2)
        while time.monotonic() < deadline:
            try:
                self.message()
            except websocket.WebSocketTimeoutException:
                continue
        self.ws.settimeout(None)
        return self.received - start

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self.ws.close()


def unix_ws_connector(sock_path: Path, path: str = "/websockify", headers=None):
    """A function opening a websocket to a unix-socket HTTP server (the relay)."""

    def connect():
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.connect(str(sock_path))
        return websocket.create_connection(
            f"ws://localhost{path}", socket=sock, subprotocols=["binary"], header=headers or []
        )

    return connect


def open_session(connect) -> dict:
    """Main + display + inputs channels, like spice-html5 opens them."""
    main = SpiceChannel(connect, 1)
    while True:
        msg_type, body = main.message()
        if msg_type == 103:  # MAIN_INIT
            session_id = struct.unpack_from("<I", body)[0]
            break
    main.send(mini(104))  # ATTACH_CHANNELS
    display = SpiceChannel(connect, 2, session_id)
    # DISPLAY_INIT: pixmap cache id/size, glz dictionary id/window — same number as KEY_DOWN.
    display.send(mini(101, struct.pack("<BqBi", 1, 20 * 1024 * 1024, 1, 8 * 1024 * 1024)))
    inputs = SpiceChannel(connect, 3, session_id)
    return {"main": main, "display": display, "inputs": inputs}


def key_press(inputs: SpiceChannel, scancode: int = 0x1E) -> None:
    inputs.send(mini(101, struct.pack("<I", scancode)))
    inputs.send(mini(102, struct.pack("<I", scancode | 0x80)))


def read_events(lab: LabPaths) -> list[dict]:
    if not lab.console_events.exists():
        return []
    return [json.loads(line) for line in lab.console_events.read_text().splitlines()]


def listening_tcp_inodes() -> set[str]:
    """Socket inodes of every listening TCP socket on the machine (IPv4 and IPv6)."""
    inodes = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        with contextlib.suppress(FileNotFoundError), open(table) as f:
            for line in f.readlines()[1:]:
                cols = line.split()
                if cols[3] == "0A":  # LISTEN
                    inodes.add(cols[9])
    return inodes


def process_socket_inodes(pid: int) -> set[str]:
    inodes = set()
    for fd in os.listdir(f"/proc/{pid}/fd"):
        with contextlib.suppress(OSError):
            target = os.readlink(f"/proc/{pid}/fd/{fd}")
            if target.startswith("socket:["):
                inodes.add(target[8:-1])
    return inodes


def remove_tree(path: Path) -> None:
    shutil.rmtree(path, ignore_errors=True)

"""The console relay: websockify (PyPI 0.13) extended, by subclassing, with what a lab needs.

- listens on the unix socket jupyter-server-proxy allocates (``--unix-listen``) and connects
  each websocket to the lab's SPICE unix socket (``--unix-target``): no TCP anywhere;
- serves our console page (``--web``), Debian's spice-html5 under ``spice-html5/`` and a
  small ``status.json`` for the page's banners and Stop link;
- watches client→server bytes of every channel (:mod:`.spice`) and reports keyboard/mouse
  input on inputs channels to the hub (:mod:`.activity`); server→client traffic (screen
  updates) is never looked at, so it can never count as activity;
- records console connects/disconnects (main channel) and reported input in
  ``LabPaths.console_events``.

websockify's own proxy loop is kept as is — it only reads from one side while the other side
can take data (bounded memory with a slow reader); we only observe the frames it decoded.
Each websocket is handled in its own forked process (websockify's model), so per-connection
state lives on the handler.
"""

import argparse
import json
import logging
import os
import stat
import sys
import time
import urllib.parse
from pathlib import Path

from websockify.websocketproxy import ProxyRequestHandler, WebSocketProxy

from blabs_hub.lab.console.activity import ActivityReporter, HubActivityTarget, record_event
from blabs_hub.lab.console.spice import CHANNEL_INPUTS, CHANNEL_MAIN, ClientStream
from blabs_hub.lab.console.status import console_status
from blabs_hub.lab.spec import LabPaths

log = logging.getLogger("blabs.console")

STATIC_DIR = Path(__file__).resolve().parent / "static"
SPICE_PREFIX = "/spice-html5/"
STATUS_PATH = "/status.json"


class ConsoleRequestHandler(ProxyRequestHandler):
    """websockify's proxy handler plus input watching, our routes and safer headers."""

    # --- HTTP: our page, spice-html5, status.json -------------------------------------------

    def translate_path(self, path):
        route = urllib.parse.urlsplit(path).path
        if route.startswith(SPICE_PREFIX):
            self.directory = self.server.spice_html5_dir
            path = path[len(SPICE_PREFIX) - 1 :]
        else:
            self.directory = self.server.web
        # The base class normalises the path and drops ".." parts.
        return super().translate_path(path)

    def do_GET(self):
        if urllib.parse.urlsplit(self.path).path == STATUS_PATH and not self._is_upgrade():
            self._send_status()
            return
        super().do_GET()

    def _is_upgrade(self) -> bool:
        return self.headers.get("Upgrade", "").lower() == "websocket"

    def _send_status(self):
        try:
            with open(self.server.lab.status_file, encoding="utf-8", errors="replace") as f:
                lines = f.readlines()
        except OSError:
            lines = []
        body = json.dumps(console_status(lines)).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def end_headers(self):
        self.send_header("Cache-Control", "no-cache")
        self.send_header("X-Content-Type-Options", "nosniff")
        self.send_header("Referrer-Policy", "no-referrer")
        super().end_headers()

    def list_directory(self, path):
        self.send_error(404)

    # --- websocket: observe the client→server frames websockify decoded ----------------------

    def new_websocket_client(self):
        self.spice = ClientStream()
        self.reporter = None
        self.main_connected_at = None
        try:
            super().new_websocket_client()
        finally:
            self._websocket_closed()

    def recv_frames(self):
        bufs, closed = super().recv_frames()
        for buf in bufs:
            self._watch(buf)
        return bufs, closed

    def _watch(self, payload: bytes) -> None:
        had_link = self.spice.link is not None
        inputs = self.spice.feed(payload)
        if not had_link and self.spice.link is not None:
            self._linked()
        if inputs and self.reporter is not None:
            self.reporter.note_input()

    def _linked(self) -> None:
        channel = self.spice.link.channel_type
        if channel == CHANNEL_INPUTS:
            self.reporter = ActivityReporter(
                self.server.activity_target,
                self.server.activity_interval,
                on_report=lambda ts: self._event("input", ts),
            )
        elif channel == CHANNEL_MAIN:
            self.main_connected_at = time.time()
            self._event("connect", self.main_connected_at)

    def _websocket_closed(self) -> None:
        if self.reporter is not None:
            self.reporter.close()
        if self.main_connected_at is not None:
            self._event("disconnect")

    def _event(self, event: str, ts: float | None = None) -> None:
        path = self.server.lab.console_events
        if not path.parent.is_dir():
            return
        try:
            record_event(path, event, ts, channel=self.spice.link.channel_name)
        except OSError as e:
            log.warning("console: could not record %s event in %s: %s", event, path, e)


class ConsoleRelay(WebSocketProxy):
    """websockify's server, configured for one lab."""

    def __init__(
        self,
        *,
        lab: LabPaths,
        spice_html5_dir: str,
        activity_interval: float,
        activity_target: HubActivityTarget | None,
        **kwargs,
    ):
        self.lab = lab
        self.spice_html5_dir = os.path.abspath(spice_html5_dir)
        self.activity_interval = activity_interval
        self.activity_target = activity_target
        kwargs.setdefault("unix_target", str(lab.spice_socket))
        kwargs.setdefault("web", str(STATIC_DIR))
        kwargs.setdefault("file_only", True)
        super().__init__(RequestHandlerClass=ConsoleRequestHandler, **kwargs)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m blabs_hub.lab.console.relay",
        description="Relay a browser's SPICE websockets to a lab's SPICE unix socket.",
    )
    where = parser.add_mutually_exclusive_group(required=True)
    where.add_argument("--unix-listen", metavar="PATH", help="listen on this unix socket")
    where.add_argument(
        "--port", type=int, help="listen on 127.0.0.1:PORT instead (tests, benchmarks)"
    )
    parser.add_argument("--workdir", required=True, help="the lab's folder (LabPaths)")
    parser.add_argument("--unix-target", help="SPICE socket (default: the lab's spice.sock)")
    parser.add_argument("--web", default=str(STATIC_DIR), help="console page folder")
    parser.add_argument("--spice-html5", default="/usr/share/spice-html5", help="spice-html5")
    parser.add_argument("--activity-interval", type=float, default=60.0, help="seconds")
    parser.add_argument("--verbose", action="store_true")
    return parser


def main(argv=None) -> None:
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="[blabs console %(asctime)s] %(message)s",
        stream=sys.stderr,
    )
    lab = LabPaths(Path(args.workdir))
    listen = (
        {"unix_listen": args.unix_listen, "unix_listen_mode": stat.S_IRUSR | stat.S_IWUSR}
        if args.unix_listen
        else {"listen_host": "127.0.0.1", "listen_port": args.port}
    )
    target = HubActivityTarget.from_env()
    if target is None:
        log.warning("console: no JUPYTERHUB_API_TOKEN/activity URL: input is not reported")
    relay = ConsoleRelay(
        lab=lab,
        spice_html5_dir=args.spice_html5,
        activity_interval=args.activity_interval,
        activity_target=target,
        unix_target=args.unix_target or str(lab.spice_socket),
        web=args.web,
        verbose=args.verbose,
        **listen,
    )
    relay.start_server()


if __name__ == "__main__":
    main()

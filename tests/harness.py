"""Real services for tests: a JupyterHub process with its proxy, and a PostgreSQL cluster.

Everything binds to 127.0.0.1 on a free port, lives in a temp folder, and is stopped by
its own PID. The hub runs the repository's ``jupyterhub_config.py`` unchanged; a test adds
configuration through a small wrapper file (``extra_config``), as a site would through
``jupyterhub_config.d``.
"""

import contextlib
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import textwrap
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import requests

from blabs_hub.catalog import Catalog
from blabs_hub.demo.seed import seed_demo

REPO = Path(__file__).resolve().parent.parent
VENV_BIN = Path(sys.executable).parent

# Scopes of the test's own admin service token: the hub's admin powers plus every blabs scope.
ADMIN_SCOPES = [
    "admin:users",
    "admin:servers",
    "admin:groups",
    "admin:auth_state",
    "tokens",
    "read:hub",
    "proxy",
    "access:services",
    "access:servers",
    "read:roles",
    "read:metrics",
    "custom:blabs:images",
    "custom:blabs:templates",
    "custom:blabs:settings",
    "custom:blabs:reports",
]


def off_the_loop(fn, *args, **kwargs):
    """Run ``fn`` in a thread of its own and return its result.

    Playwright's sync API runs an asyncio loop in the test's thread, so blocking helpers
    that start their own loop (asyncio.run, qemu.qmp's legacy client) must run elsewhere.
    """
    with ThreadPoolExecutor(1) as pool:
        return pool.submit(fn, *args, **kwargs).result()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for(predicate, timeout: float, what: str, interval: float = 0.05):
    """Poll ``predicate`` until it returns something true, and return that; fail naming
    ``what`` after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"{what} (waited {timeout} s)")


def lab_dirs(hub: "RunningHub") -> set[Path]:
    """The lab folders the local spawner has under a hub's data folder right now."""
    labs = hub.data_dir / "labs"
    return {p for p in labs.iterdir() if p.is_dir()} if labs.exists() else set()


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # A zombie still answers kill(0); it is dead for our purposes.
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split(") ", 1)[1][0] != "Z"
    except OSError:
        return False


def stop_pid(pid: int, sig=signal.SIGTERM, timeout: float = 15) -> None:
    """Ask a process to stop, wait, then kill it; never leaves it running."""
    if not pid_alive(pid):
        return
    try:
        os.kill(pid, sig)
    except ProcessLookupError:
        return
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not pid_alive(pid):
            return
        time.sleep(0.05)
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGKILL)


def processes_mentioning(text: str) -> list[int]:
    """PIDs whose command line or environment mentions ``text`` (e.g. a hub's data folder)."""
    found = []
    needle = text.encode()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            if (
                needle in (entry / "cmdline").read_bytes()
                or needle in (entry / "environ").read_bytes()
            ):
                found.append(int(entry.name))
        except OSError:
            continue
    return found


@dataclass
class RunningHub:
    """A JupyterHub process the test started, with an admin token for its REST API."""

    root: Path
    extra_config: str = ""
    env: dict = field(default_factory=dict)
    admin_token: str = field(default_factory=lambda: secrets.token_hex(16))
    process: subprocess.Popen | None = None

    def __post_init__(self):
        self.root.mkdir(parents=True, exist_ok=True)
        self.data_dir = self.root / "data"
        self.ports = {
            "BLABS_PORT": free_port(),
            "BLABS_HUB_PORT": free_port(),
            "BLABS_PROXY_API_PORT": free_port(),
            "BLABS_SERVICE_PORT": free_port(),
        }
        self.url = f"http://127.0.0.1:{self.ports['BLABS_PORT']}"
        self.log_path = self.root / "hub.log"
        self.config_path = self.root / "test_config.py"

    # --- lifecycle ---------------------------------------------------------------------------

    def write_config(self) -> None:
        self.config_path.write_text(
            textwrap.dedent(
                f"""
                c = get_config()
                load_subconfig({str(REPO / "jupyterhub_config.py")!r})
                c.JupyterHub.services.append(
                    {{"name": "test-admin", "api_token": {self.admin_token!r}}}
                )
                c.JupyterHub.load_roles.append(
                    {{"name": "test-admin", "scopes": {ADMIN_SCOPES!r},
                      "services": ["test-admin"]}}
                )
                # Short activity intervals: the defaults (300 s) make activity tests wrong.
                c.JupyterHub.last_activity_interval = 2
                c.JupyterHub.activity_resolution = 1
                c.Spawner.environment = {{"JUPYTERHUB_ACTIVITY_INTERVAL": "2"}}
                c.JupyterHub.log_level = "DEBUG"
                """
            )
            + textwrap.dedent(self.extra_config)
        )

    def environment(self) -> dict:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("BLABS_", "JUPYTERHUB_"))}
        env.update({k: str(v) for k, v in self.ports.items()})
        env["BLABS_DATA_DIR"] = str(self.data_dir)
        env["BLABS_CONFIG_D"] = str(self.root / "config.d")
        env["PATH"] = f"{VENV_BIN}:{env.get('PATH', '')}"
        env.update(self.env)
        return env

    def start(self, timeout: float = 60) -> "RunningHub":
        self.write_config()
        log = open(self.log_path, "ab")  # noqa: SIM115 (the process keeps it open)
        self.process = subprocess.Popen(
            [str(VENV_BIN / "jupyterhub"), "-f", str(self.config_path)],
            cwd=self.root,
            env=self.environment(),
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
        log.close()
        self.wait_ready(timeout)
        return self

    def wait_ready(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"hub exited with {self.process.returncode}:\n{self.log_text()}")
            try:
                hub = requests.get(f"{self.url}/hub/health", timeout=2)
                svc = requests.get(f"{self.url}/services/blabs/health", timeout=2)
                if hub.status_code == 200 and svc.status_code == 200:
                    return
            except requests.RequestException:
                pass
            time.sleep(0.2)
        self.stop()
        raise TimeoutError(f"hub not ready after {timeout} s:\n{self.log_text()}")

    def stop(self) -> None:
        """Stop the hub by its PID; it stops its proxy and services. Then check they did."""
        if self.process is None:
            return
        stop_pid(self.process.pid, signal.SIGTERM, timeout=20)
        self.process.wait()
        self.process = None
        pid_file = self.data_dir / "jupyterhub-proxy.pid"
        if pid_file.exists():
            stop_pid(int(pid_file.read_text().strip() or 0) or -1)

    def stop_labs(self) -> None:
        """Stop every lab this hub started (they outlive the hub by design), then make sure.

        Labs are stopped through the hub's API; :meth:`close` then stops by PID whatever
        still runs from this hub's data folder (a lab of a test that failed half-way).
        """
        if self.process is not None and self.process.poll() is None:
            try:
                users = self.api("GET", "/users", params={"state": "active"}).json()
                for user in users:
                    for name in user.get("servers", {}):
                        self.api("DELETE", f"/users/{user['name']}/servers/{name}")
            except requests.RequestException:
                pass

    def close(self) -> None:
        """The end of a test session: labs, the hub, then anything of theirs still running."""
        self.stop_labs()
        self.stop()
        for pid in processes_mentioning(str(self.data_dir)):
            stop_pid(pid, signal.SIGTERM, timeout=20)

    def restart(self) -> "RunningHub":
        self.stop()
        return self.start()

    def log_text(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    # --- its catalog -------------------------------------------------------------------------

    @property
    def catalog_url(self) -> str:
        """The hub's catalog database: SQLite in its data folder (the default)."""
        return f"sqlite:///{self.data_dir / 'blabs.sqlite'}"

    def seed_demo(self, demo_image: Path, **template) -> None:
        """Put the demo image and its template (``template`` overrides fields) in the catalog."""
        catalog = Catalog(self.catalog_url)
        try:
            seed_demo(catalog, self.data_dir / "images", demo_image, **template)
        finally:
            catalog.dispose()

    # --- clients -----------------------------------------------------------------------------

    def api(self, method: str, path: str, token: str | None = None, **kw) -> requests.Response:
        """Call the hub's REST API (``/hub/api{path}``), as the test admin by default."""
        headers = {"Authorization": f"token {token or self.admin_token}", **kw.pop("headers", {})}
        return requests.request(
            method, f"{self.url}/hub/api{path}", headers=headers, timeout=30, **kw
        )

    def service_api(self, method: str, path: str, token: str | None = None, **kw):
        """Call the blabs service's REST API (``/services/blabs/api{path}``)."""
        headers = {"Authorization": f"token {token or self.admin_token}", **kw.pop("headers", {})}
        return requests.request(
            method, f"{self.url}/services/blabs/api{path}", headers=headers, timeout=60, **kw
        )

    def create_user(self, name: str, admin: bool = False) -> str:
        """Create a hub user (if needed) and return an API token of theirs."""
        r = self.api("POST", f"/users/{name}", json={"admin": admin})
        assert r.status_code in (201, 409), r.text
        r = self.api("POST", f"/users/{name}/tokens", json={"note": "test"})
        assert r.status_code == 201, r.text
        return r.json()["token"]


def pg_tool(name: str) -> str:
    """A PostgreSQL program: on PATH, or in Debian's versioned folder (not on PATH there)."""
    found = shutil.which(name)
    if found:
        return found
    candidates = sorted(Path("/usr/lib/postgresql").glob(f"*/bin/{name}"))
    if not candidates:
        raise FileNotFoundError(f"PostgreSQL's {name} not found: run `make test` to install it")
    return str(candidates[-1])


class PostgresCluster:
    """A throwaway PostgreSQL cluster from Debian's package, on loopback.

    PostgreSQL refuses to run as root, so as root the cluster belongs to ``postgres``.
    """

    def __init__(self):
        # Not under pytest's temp folder: that is private to root, and the server runs as
        # ``postgres``. Removed again by stop().
        self.root = Path(tempfile.mkdtemp(prefix="blabs-pg-"))
        self.datadir = self.root / "pgdata"
        self.port = free_port()
        self.pid: int | None = None
        self._count = 0

    def _as_owner(self, argv: list[str]) -> list[str]:
        return ["runuser", "-u", "postgres", "--", *argv] if os.geteuid() == 0 else argv

    def start(self) -> "PostgresCluster":
        if os.geteuid() == 0:
            shutil.chown(self.root, "postgres")
            os.chmod(self.root, 0o700)
        subprocess.run(
            self._as_owner(
                [pg_tool("initdb"), "-D", str(self.datadir), "-U", "postgres", "-A", "trust"]
            ),
            check=True,
            capture_output=True,
        )
        subprocess.run(
            self._as_owner(
                [
                    pg_tool("pg_ctl"),
                    "-D",
                    str(self.datadir),
                    "-l",
                    str(self.root / "postgres.log"),
                    "-o",
                    f"-k {self.root} -h 127.0.0.1 -p {self.port}",
                    "-w",
                    "start",
                ]
            ),
            check=True,
            capture_output=True,
        )
        self.pid = int((self.datadir / "postmaster.pid").read_text().split()[0])
        return self

    def new_database(self) -> str:
        """A fresh, empty database; returns its SQLAlchemy URL."""
        self._count += 1
        name = f"blabs_test_{self._count}"
        subprocess.run(
            self._as_owner(
                [
                    pg_tool("createdb"),
                    "-h",
                    "127.0.0.1",
                    "-p",
                    str(self.port),
                    "-U",
                    "postgres",
                    name,
                ]
            ),
            check=True,
            capture_output=True,
        )
        return f"postgresql+psycopg2://postgres@127.0.0.1:{self.port}/{name}"

    def stop(self) -> None:
        if self.pid:
            # SIGINT is PostgreSQL's "fast shutdown".
            stop_pid(self.pid, signal.SIGINT, timeout=30)
            self.pid = None
        shutil.rmtree(self.root, ignore_errors=True)

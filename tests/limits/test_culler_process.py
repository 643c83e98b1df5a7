"""The culler service ends at once on SIGINT and SIGTERM, even when started with SIGINT
ignored (a hub started in the background from bash passes that on): otherwise the hub
waits its full service-stop timeout at every shutdown."""

import signal
import subprocess
import sys
import time

import pytest

from blabs_hub.catalog import Catalog
from blabs_hub.config import SettingsDefaults
from tests.harness import free_port


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_culler_exits_promptly(tmp_path, sig):
    url = f"sqlite:///{tmp_path}/blabs.sqlite"
    catalog = Catalog(url)
    catalog.upgrade()
    catalog.seed_settings(SettingsDefaults())
    catalog.dispose()
    env = {
        "BLABS_DB_URL": url,
        "BLABS_DATA_DIR": str(tmp_path),
        "BLABS_REAPER_INTERVAL_SECONDS": "5",
        "JUPYTERHUB_API_URL": f"http://127.0.0.1:{free_port()}/hub/api",  # nobody listens
        "JUPYTERHUB_API_TOKEN": "x",
    }
    proc = subprocess.Popen(
        [sys.executable, "-m", "blabs_hub.culler"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_IGN),
    )
    try:
        time.sleep(2)  # through one failed cycle, into the wait between cycles
        assert proc.poll() is None, proc.stdout.read().decode()
        t = time.monotonic()
        proc.send_signal(sig)
        proc.wait(timeout=5)
        assert time.monotonic() - t < 2
        assert b"Culler stopped" in proc.stdout.read()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()

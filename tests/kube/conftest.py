"""Fixtures for the Kubernetes suite: a fake API server, a seeded catalog, a hub using both."""

import pytest
from kubespawner import KubeSpawner

from blabs_hub.catalog import Catalog, Image, Template
from tests.kube.fakekube import FakeKube

DUMMY_AUTH = 'c.JupyterHub.authenticator_class = "dummy"\n'

# Every kind of machine a template can describe, plus the ones a spawn must refuse.
TEMPLATES = [
    dict(slug="win11", title="Windows 11", cpus=4, memory_mib=8192, firmware="uefi-secure-tpm"),
    dict(
        slug="win10",
        title="Windows 10",
        cpus=2,
        memory_mib=4096,
        firmware="bios",
        max_session_minutes=90,
    ),
    dict(
        slug="linux",
        title="Linux",
        cpus=1,
        memory_mib=1024,
        firmware="uefi",
        disk_bus="virtio",
        guest_profile="generic",
        network="none",
    ),
    dict(slug="offline", title="Disabled", enabled=False),
]
LAB_IMAGE = "registry.example.org/bretter-labs/lab:0.1.0"


def seed_catalog(url: str, templates=TEMPLATES) -> None:
    """The catalog a hub starts with: one ready image, one not ready, and the templates."""
    catalog = Catalog(url)
    catalog.upgrade()
    with catalog.session() as db, db.begin():
        ready = Image(name="base", filename="base.qcow2", format="qcow2", status="ready")
        pending = Image(name="uploading", filename="up.qcow2", format="qcow2", status="converting")
        db.add_all([ready, pending])
        db.flush()
        for t in templates:
            db.add(Template(image_id=ready.id, **t))
        db.add(Template(slug="notready", title="Not ready", image_id=pending.id))
    catalog.dispose()


@pytest.fixture(scope="session")
def fake_kube():
    """The fake API server, for the whole session (tests reset what they changed)."""
    fake = FakeKube().start()
    yield fake
    fake.stop()


@pytest.fixture
def fake(fake_kube):
    fake_kube.reset()
    yield fake_kube
    fake_kube.reset()


@pytest.fixture(scope="session")
def kubeconfig(fake_kube, tmp_path_factory):
    return fake_kube.write_kubeconfig(tmp_path_factory.mktemp("kube") / "kubeconfig")


def kube_hub_config(start_timeout: int = 6) -> str:
    return DUMMY_AUTH + (
        f"c.KubeSpawner.start_timeout = {start_timeout}\n"
        "c.KubeSpawner.http_timeout = 10\n"
        f"c.KubeSpawner.image = {LAB_IMAGE!r}\n"
        "c.KubeSpawner.events_enabled = True\n"
        "c.KubeSpawner.poll_interval = 1\n"
    )


def kube_hub_env(kubeconfig, **extra) -> dict:
    return {
        "BLABS_SPAWNER": "blabs-kube",
        "KUBECONFIG": str(kubeconfig),
        "BLABS_PER_USER_VM_LIMIT": "5",
        "BLABS_MAX_CONCURRENT_VMS": "1000",
        "BLABS_IMAGES_DIR": "/srv/blabs/images",
        **extra,
    }


@pytest.fixture(scope="module")
def kube_hub(hub_factory, kubeconfig):
    """A real hub (and its proxy and blabs service) whose labs are pods in the fake API."""
    hub = hub_factory.create(kube_hub_config(), env=kube_hub_env(kubeconfig))
    hub.data_dir.mkdir(parents=True, exist_ok=True)
    seed_catalog(hub.catalog_url)
    hub.start()
    yield hub
    hub.stop()


@pytest.fixture
def in_process_kubeconfig(kubeconfig, monkeypatch):
    """KubeSpawner loads a kubeconfig even with ``_mock=True``: give it the fake's."""
    from kubernetes_asyncio.config import kube_config

    monkeypatch.setenv("KUBECONFIG", str(kubeconfig))
    # Read once at import time by kubernetes_asyncio, so set there too.
    monkeypatch.setattr(kube_config, "KUBE_CONFIG_DEFAULT_LOCATION", str(kubeconfig))
    monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)
    yield kubeconfig


@pytest.fixture(autouse=True)
def clear_reflectors():
    """KubeSpawner shares pod/event watchers class-wide; each test's loop needs its own."""
    yield
    KubeSpawner.reflectors.clear()

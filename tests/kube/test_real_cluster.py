"""Against a real cluster, when ``KUBECONFIG`` names one; skipped, saying so, otherwise.

Nothing is left behind: the lab pod is sent with server-side dry run (the API server
validates and admits it, including Pod Security and the RuntimeClass, but stores nothing),
and the rest only reads.
"""

import asyncio
import os

import pytest
from kubernetes_asyncio import client, config

from blabs_hub.hub.spawners.pod import KubeLab

pytestmark = pytest.mark.skipif(
    not os.environ.get("KUBECONFIG"),
    reason="no real cluster: set KUBECONFIG (and BLABS_KUBE_* as deployed) to run this suite",
)


def run(coro):
    return asyncio.run(coro)


async def api():
    await config.load_kube_config()
    return client.ApiClient()


def test_some_node_offers_the_kvm_resource():
    lab = KubeLab()
    if not lab.kvm_resource:
        pytest.skip("BLABS_KUBE_KVM_RESOURCE is empty: this deployment runs labs under TCG")

    async def check():
        async with await api() as c:
            nodes = await client.CoreV1Api(c).list_node()
        return {
            n.metadata.name: (n.status.allocatable or {}).get(lab.kvm_resource) for n in nodes.items
        }

    offered = run(check())
    assert any(v and v != "0" for v in offered.values()), (
        f"no node offers {lab.kvm_resource}: install a KVM device plugin ({offered})"
    )


def test_the_runtime_class_exists():
    lab = KubeLab()
    if not lab.runtime_class:
        pytest.skip("BLABS_KUBE_RUNTIME_CLASS is empty: the cluster default runtime is used")

    async def check():
        async with await api() as c:
            return await client.NodeV1Api(c).read_runtime_class(lab.runtime_class)

    assert run(check()).handler


def test_the_api_server_admits_a_lab_pod(in_process_kubeconfig_real):
    from tests.kube.test_manifests import manifest

    pod = manifest(in_process_kubeconfig_real, "t0")
    namespace = os.environ.get("BLABS_KUBE_TEST_NAMESPACE", "default")

    async def dry_run():
        async with await api() as c:
            return await client.CoreV1Api(c).create_namespaced_pod(namespace, pod, dry_run="All")

    created = run(dry_run())
    assert created.metadata.name == pod["metadata"]["name"]


@pytest.fixture
def in_process_kubeconfig_real(tmp_path):
    """A catalog with the manifest tests' variants; KubeSpawner reads the real KUBECONFIG."""
    from tests.kube.conftest import seed_catalog
    from tests.kube.test_manifests import VARIANTS

    url = f"sqlite:///{tmp_path / 'blabs.sqlite'}"
    seed_catalog(url, VARIANTS)
    return url

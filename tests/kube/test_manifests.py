"""Lab pod manifests, built by the real spawner class, valid for Kubernetes 1.32 and 1.37.

``BlabsKubeSpawner(_mock=True)`` builds the manifest exactly as in the hub (KubeSpawner's
``make_pod`` fed by our builders), without a cluster; the builders' pure helpers are
tested beside it.
"""

import itertools

import kubernetes_validate
import pytest
import yaml
from kubernetes_asyncio.client import ApiClient
from traitlets import TraitError
from traitlets.config import Config

from blabs_hub.hub.spawners.kube import BlabsKubeSpawner
from blabs_hub.hub.spawners.pod import (
    KubeLab,
    merge_overrides,
    pending_reason,
    pod_failure,
    vm_resources,
)
from blabs_hub.lab.spec import DISK_BUSES, FIRMWARES, GUEST_PROFILES, NETWORKS, LabSpec
from tests.harness import REPO
from tests.kube.conftest import LAB_IMAGE, seed_catalog

VARIANTS = [
    dict(
        slug=f"t{i}",
        title=f"variant {i}",
        firmware=fw,
        disk_bus=bus,
        network=net,
        guest_profile=guest,
        cpus=1 + i % 4,
        memory_mib=1024 * (1 + i % 3),
    )
    for i, (fw, bus, net, guest) in enumerate(
        itertools.product(FIRMWARES, DISK_BUSES, NETWORKS, GUEST_PROFILES)
    )
]


@pytest.fixture(scope="module")
def catalog_url(tmp_path_factory):
    url = f"sqlite:///{tmp_path_factory.mktemp('catalog') / 'blabs.sqlite'}"
    seed_catalog(url, VARIANTS)
    return url


def manifest(catalog_url: str, slug: str, **lab) -> dict:
    """The pod the hub would create for ``slug``, as the JSON sent to the API server."""
    import asyncio

    async def build():
        c = Config()
        c.TemplateChoice.db_url = catalog_url
        c.TemplateChoice.images_dir = "/srv/blabs/images"
        c.KubeSpawner.image = LAB_IMAGE
        for name, value in lab.items():
            setattr(c.KubeLab, name, value)
        spawner = BlabsKubeSpawner(_mock=True, config=c)
        spawner.user_options = {"template": slug}
        await spawner.load_user_options()
        pod = await spawner.get_pod_manifest()
        return ApiClient().sanitize_for_serialization(pod)

    return asyncio.run(build())


@pytest.mark.parametrize("version", ["1.32", "1.37"])
def test_every_template_variant_validates_strictly(in_process_kubeconfig, catalog_url, version):
    assert len(VARIANTS) == 24
    for variant in VARIANTS:
        pod = manifest(catalog_url, variant["slug"])
        kubernetes_validate.validate(pod, version, strict=True)


def test_optional_deployment_settings_validate_too(in_process_kubeconfig, catalog_url):
    pod = manifest(catalog_url, "t0", runtime_class="kata-qemu", kvm_resource="", kvm_gid=108)
    for version in ("1.32", "1.37"):
        kubernetes_validate.validate(pod, version, strict=True)
    assert pod["spec"]["runtimeClassName"] == "kata-qemu"
    assert pod["spec"]["securityContext"]["supplementalGroups"] == [108]
    vm = pod["spec"]["containers"][1]
    assert {e["name"]: e["value"] for e in vm["env"]}["BLABS_ACCEL"] == "tcg"
    assert "devices.kubevirt.io/kvm" not in vm["resources"]["limits"]


def test_the_lab_pod_is_locked_down(in_process_kubeconfig, catalog_url):
    pod = manifest(catalog_url, "t5")
    spec = pod["spec"]
    console, vm = spec["containers"]
    assert (console["name"], vm["name"]) == ("console", "vm")
    assert console["ports"] == [{"containerPort": 8888, "name": "notebook-port"}]
    assert spec["automountServiceAccountToken"] is False
    assert spec["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    assert spec["securityContext"]["runAsNonRoot"] is True
    for c in (console, vm):
        sc = c["securityContext"]
        assert sc["allowPrivilegeEscalation"] is False
        assert sc["privileged"] is False
        assert sc["capabilities"] == {"drop": ["ALL"]}
        assert sc["runAsUser"] == 1000 and sc["runAsNonRoot"] is True
        assert not c.get("ports") or c is console  # SPICE and QMP never on a TCP port
    # The VM container holds no hub credential: the guest belongs to the student.
    assert not [e for e in vm["env"] if e["name"].startswith(("JUPYTERHUB_", "JPY_"))]
    assert vm["resources"]["limits"]["devices.kubevirt.io/kvm"] == "1"
    mounts = {m["name"]: m for m in vm["volumeMounts"]}
    assert mounts["images"] == {
        "name": "images",
        "mountPath": "/srv/blabs/images",
        "readOnly": True,
    }
    volumes = {v["name"]: v for v in spec["volumes"]}
    assert volumes["images"]["persistentVolumeClaim"] == {
        "claimName": "blabs-images",
        "readOnly": True,
    }
    assert "emptyDir" in volumes["lab"]
    env = {e["name"]: e.get("value") for e in console["env"]}
    assert env["BLABS_LAB_WORKDIR"] == "/lab"
    assert env["JUPYTERHUB_DEFAULT_URL"] == "/console/"
    assert pod["metadata"]["labels"]["bretter-labs/template"] == "t5"


def test_resources_are_the_template_plus_qemu_overhead():
    spec = LabSpec(slug="w", image_path="/i/w.qcow2", image_format="qcow2", cpus=4, memory_mib=8192)
    lab = KubeLab(qemu_overhead_mib=512, qemu_overhead_millicpu=250, cpu_request_percent=50)
    res = vm_resources(spec, lab)
    assert res["limits"] == {"cpu": "4250m", "memory": "8704Mi", "devices.kubevirt.io/kvm": "1"}
    assert res["requests"] == {"cpu": "2250m", "memory": "8704Mi", "devices.kubevirt.io/kvm": "1"}


@pytest.mark.parametrize(
    ("variable", "value", "words"),
    [
        ("BLABS_KUBE_UID", "0", "never run as root"),
        ("BLABS_KUBE_ACCEL", "fast", "must be one of auto, kvm, tcg"),
        ("BLABS_KUBE_KVM_RESOURCE", "kvm", "extended resource name"),
        ("BLABS_KUBE_CPU_REQUEST_PERCENT", "0", "between 1 and 100"),
        ("BLABS_KUBE_QEMU_OVERHEAD_MIB", "lots", "not a whole number"),
    ],
)
def test_bad_kube_settings_are_refused_naming_the_variable(monkeypatch, variable, value, words):
    monkeypatch.setenv(variable, value)
    with pytest.raises((TraitError, ValueError)) as e:
        KubeLab()
    assert words in str(e.value)


def test_site_config_is_kept_and_ours_wins_by_name():
    current = {
        "volumes": [{"name": "site-certs", "secret": {"secretName": "x"}}, {"name": "lab"}],
        "environment": {"TZ": "Europe/Vienna"},
        "uid": 1234,
    }
    ours = {
        "volumes": [{"name": "lab", "emptyDir": {}}],
        "environment": {"HOME": "/tmp"},
        "uid": 1000,
    }
    merged = merge_overrides(current, ours)
    assert merged["volumes"] == [
        {"name": "site-certs", "secret": {"secretName": "x"}},
        {"name": "lab", "emptyDir": {}},
    ]
    assert merged["environment"] == {"TZ": "Europe/Vienna", "HOME": "/tmp"}
    assert merged["uid"] == 1000


def status(**kw) -> dict:
    return {"metadata": {"name": "p"}, "status": kw}


@pytest.mark.parametrize(
    ("pod", "words"),
    [
        (None, None),
        (status(phase="Pending"), None),
        (status(phase="Failed", reason="Evicted", message="disk"), "failed (Evicted: disk)"),
        (
            status(
                phase="Pending",
                containerStatuses=[
                    {"name": "vm", "state": {"waiting": {"reason": "ImagePullBackOff"}}}
                ],
            ),
            "'vm' container cannot start, its image could not be pulled",
        ),
        (
            status(
                phase="Running",
                containerStatuses=[
                    {
                        "name": "vm",
                        "state": {"waiting": {"reason": "CrashLoopBackOff"}},
                        "lastState": {"terminated": {"reason": "OOMKilled", "exitCode": 137}},
                    }
                ],
            ),
            "ran out of memory (OOMKilled)",
        ),
        (
            status(
                phase="Running",
                containerStatuses=[
                    {"name": "vm", "state": {"terminated": {"exitCode": 3, "message": "no image"}}}
                ],
            ),
            "exited with code 3 no image",
        ),
    ],
)
def test_pod_failure_names_the_cause(pod, words):
    found = pod_failure(pod)
    assert (found is None) if words is None else (words in found)


def test_pending_reason_prefers_the_scheduler_then_warnings():
    unschedulable = status(
        phase="Pending",
        conditions=[{"type": "PodScheduled", "status": "False", "message": "0/3 nodes: kvm"}],
    )
    assert pending_reason(unschedulable, []) == "it could not be scheduled: 0/3 nodes: kvm"
    warning = {"type": "Warning", "reason": "FailedMount", "message": "pvc blabs-images"}
    assert pending_reason(status(phase="Pending"), [warning]) == "FailedMount: pvc blabs-images"
    assert pending_reason(None, []) == "the pod was never created"


def test_repository_networkpolicy_validates():
    policy = yaml.safe_load((REPO / "deploy" / "networkpolicy.yaml").read_text())
    for version in ("1.32", "1.37"):
        kubernetes_validate.validate(policy, version, strict=True)
    assert policy["spec"]["podSelector"]["matchLabels"] == {"bretter-labs/role": "lab"}
    (internet,) = [r for r in policy["spec"]["egress"] if "ipBlock" in r["to"][0]]
    assert "169.254.0.0/16" in internet["to"][0]["ipBlock"]["except"]
    assert "10.0.0.0/8" in internet["to"][0]["ipBlock"]["except"]

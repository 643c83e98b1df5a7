"""A fake Kubernetes API server: the pod and event endpoints KubeSpawner uses, on loopback.

No machine here has a Kubernetes API server. This stands in for one, honestly labelled:

- ``list``/``watch``/``create``/``read``/``delete`` of pods and ``list``/``watch`` of events,
  with label and field selectors, resource versions and chunked watch streams, in one
  namespace-agnostic store;
- every object it receives is validated with kubernetes-validate, strictly, against the
  oldest and newest Kubernetes versions we support; an invalid one is refused with 422 and
  recorded in :attr:`FakeKube.invalid`;
- a pod "runs" by getting a loopback address of its own (127.0.x.y) where a tiny HTTP
  server answers on each container port, so the hub can reach the lab server it expects;
- :class:`Behavior` injects delays and failures per pod (image pull error, Pending forever,
  OOMKilled, slow or failing API calls).

It runs in a thread with its own event loop, so a test (or the benchmark) can drive a real
hub process against it and read what it saw.
"""

import asyncio
import bisect
import copy
import fnmatch
import json
import threading
import uuid
from collections import Counter
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import kubernetes_validate
from aiohttp import web

VERSIONS = ("1.32", "1.37")


@dataclass
class Behavior:
    """How the fake cluster treats a pod whose name matches ``pattern`` (fnmatch)."""

    pattern: str = "*"
    # Seconds from creation until the pod is Running and Ready.
    running_after: float = 0.05
    # None, "image-pull", "pending" or "oom".
    failure: str | None = None
    # Extra latency of the create request, and an HTTP status to refuse it with.
    create_delay: float = 0.0
    create_status: int = 0


def now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def lookup(obj: dict, dotted: str):
    for part in dotted.split("."):
        if not isinstance(obj, dict):
            return None
        obj = obj.get(part)
    return obj


def matches(obj: dict, label_selector: str, field_selector: str) -> bool:
    """Equality-based selectors, the only kind KubeSpawner sends."""
    labels = (obj.get("metadata") or {}).get("labels") or {}
    for term in filter(None, (label_selector or "").split(",")):
        key, _, value = term.partition("=")
        if labels.get(key) != value:
            return False
    for term in filter(None, (field_selector or "").split(",")):
        key, _, value = term.partition("=")
        if str(lookup(obj, key)) != value:
            return False
    return True


def status_body(code: int, reason: str, message: str) -> dict:
    return {
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": message,
        "reason": reason,
        "code": code,
    }


class FakeKube:
    """The fake API server; ``start()`` it, point a kubeconfig at :attr:`url`."""

    def __init__(self, versions=VERSIONS):
        self.versions = versions
        self.store: dict[str, dict[str, dict]] = {"pods": {}, "events": {}}
        self.history: list[tuple[int, str, str, dict]] = []  # (rv, kind, type, object)
        self.history_rvs: list[int] = []
        self.rv = 0
        self.behaviors: list[Behavior] = []
        self.requests: Counter = Counter()  # (method, kind) -> count
        self.created: list[dict] = []  # every pod manifest accepted
        self.invalid: list[str] = []  # validation errors, one line each
        self.deleted: list[str] = []
        self._next_ip = 0x000102  # 127.0.1.2, then up: every pod its own loopback address
        self._stubs: dict[str, list[web.AppRunner]] = {}
        self._tasks: dict[str, asyncio.Task] = {}
        self._changed: asyncio.Condition | None = None
        self.loop: asyncio.AbstractEventLoop | None = None
        self.url = ""

    # --- running it ---------------------------------------------------------------------

    def start(self) -> "FakeKube":
        ready = threading.Event()

        def run():
            self.loop = asyncio.new_event_loop()
            self.loop.run_until_complete(self._serve(ready))
            self.loop.run_forever()

        self._thread = threading.Thread(target=run, name="fakekube", daemon=True)
        self._thread.start()
        if not ready.wait(10):
            raise RuntimeError("fake Kubernetes API did not start")
        return self

    async def _serve(self, ready: threading.Event) -> None:
        self._changed = asyncio.Condition()
        app = web.Application()
        base = "/api/v1/namespaces/{ns}/{kind:pods|events}"
        app.router.add_get(base, self._list)
        app.router.add_post("/api/v1/namespaces/{ns}/pods", self._create_pod)
        app.router.add_get("/api/v1/namespaces/{ns}/pods/{name}", self._read_pod)
        app.router.add_delete("/api/v1/namespaces/{ns}/pods/{name}", self._delete_pod)
        self._runner = web.AppRunner(app, handle_signals=False, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]
        self.url = f"http://127.0.0.1:{port}"
        ready.set()

    def stop(self) -> None:
        if self.loop is None:
            return

        async def shutdown():
            for task in self._tasks.values():
                task.cancel()
            for key in list(self._stubs):
                await self._stop_stubs(key)
            await self._runner.cleanup()

        asyncio.run_coroutine_threadsafe(shutdown(), self.loop).result(10)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(10)
        self.loop = None

    def call(self, fn, *args):
        """Run ``fn(*args)`` (a coroutine function or not) in the fake's loop, wait for it."""

        async def run():
            result = fn(*args)
            return await result if asyncio.iscoroutine(result) else result

        return asyncio.run_coroutine_threadsafe(run(), self.loop).result(30)

    def write_kubeconfig(self, path: Path, namespace: str = "default") -> Path:
        path.write_text(
            json.dumps(
                {
                    "apiVersion": "v1",
                    "kind": "Config",
                    "clusters": [{"name": "fake", "cluster": {"server": self.url}}],
                    "users": [{"name": "fake", "user": {"token": "fake-token"}}],
                    "contexts": [
                        {
                            "name": "fake",
                            "context": {"cluster": "fake", "user": "fake", "namespace": namespace},
                        }
                    ],
                    "current-context": "fake",
                }
            )
        )
        return path

    # --- what tests read and set --------------------------------------------------------

    def behave(self, behavior: Behavior) -> None:
        """Newest first: the last matching behavior added wins."""
        self.behaviors.insert(0, behavior)

    def reset(self) -> None:
        self.behaviors.clear()
        self.requests.clear()
        self.created.clear()
        self.invalid.clear()
        self.deleted.clear()

    def pods(self) -> dict[str, dict]:
        return self.call(lambda: copy.deepcopy(self.store["pods"]))

    @property
    def writes(self) -> int:
        return sum(n for (method, _), n in self.requests.items() if method != "GET")

    def behavior_for(self, name: str) -> Behavior:
        for b in self.behaviors:
            if fnmatch.fnmatch(name, b.pattern):
                return b
        return Behavior()

    # --- the store and its history ------------------------------------------------------

    async def _emit(self, kind: str, kind_type: str, obj: dict) -> None:
        self.rv += 1
        obj["metadata"]["resourceVersion"] = str(self.rv)
        key = f"{obj['metadata']['namespace']}/{obj['metadata']['name']}"
        if kind_type == "DELETED":
            self.store[kind].pop(key, None)
        else:
            self.store[kind][key] = obj
        self.history.append((self.rv, kind, kind_type, copy.deepcopy(obj)))
        self.history_rvs.append(self.rv)
        async with self._changed:
            self._changed.notify_all()

    async def _event(self, pod: dict, kind_type: str, reason: str, message: str) -> None:
        md = pod["metadata"]
        event = {
            "apiVersion": "v1",
            "kind": "Event",
            "metadata": {
                "name": f"{md['name']}.{uuid.uuid4().hex[:12]}",
                "namespace": md["namespace"],
                "uid": str(uuid.uuid4()),
            },
            "involvedObject": {
                "kind": "Pod",
                "name": md["name"],
                "namespace": md["namespace"],
                "uid": md["uid"],
            },
            "type": kind_type,
            "reason": reason,
            "message": message,
            "lastTimestamp": now(),
            "eventTime": None,
            "source": {"component": "fake-kubelet"},
        }
        await self._emit("events", "ADDED", event)

    # --- the API --------------------------------------------------------------------------

    async def _list(self, request: web.Request) -> web.StreamResponse:
        kind = request.match_info["kind"]
        ns = request.match_info["ns"]
        q = request.query
        label, field = q.get("labelSelector", ""), q.get("fieldSelector", "")
        self.requests[("GET", kind)] += 1

        def selected(obj):
            return obj["metadata"]["namespace"] == ns and matches(obj, label, field)

        if q.get("watch") not in ("true", "True", "1"):
            items = [copy.deepcopy(o) for o in self.store[kind].values() if selected(o)]
            return web.json_response(
                {
                    "kind": "PodList" if kind == "pods" else "EventList",
                    "apiVersion": "v1",
                    "metadata": {"resourceVersion": str(self.rv)},
                    "items": items,
                }
            )
        since = int(q.get("resourceVersion") or 0)
        timeout = float(q.get("timeoutSeconds") or 30)
        response = web.StreamResponse(headers={"Content-Type": "application/json"})
        await response.prepare(request)
        deadline = self.loop.time() + timeout
        try:
            while True:
                start = bisect.bisect_right(self.history_rvs, since)
                for rv, k, kind_type, obj in self.history[start:]:
                    if k == kind and selected(obj):
                        line = json.dumps({"type": kind_type, "object": obj}) + "\n"
                        await response.write(line.encode())
                    since = rv
                remaining = deadline - self.loop.time()
                if remaining <= 0:
                    break
                if self.rv > since:
                    continue  # changed while we were writing
                async with self._changed:
                    try:
                        await asyncio.wait_for(self._changed.wait(), remaining)
                    except TimeoutError:
                        break
            await response.write_eof()
        except (ConnectionResetError, asyncio.CancelledError):
            pass
        return response

    async def _create_pod(self, request: web.Request) -> web.Response:
        self.requests[("POST", "pods")] += 1
        ns = request.match_info["ns"]
        pod = await request.json()
        name = (pod.get("metadata") or {}).get("name", "")
        behavior = self.behavior_for(name)
        if behavior.create_delay:
            await asyncio.sleep(behavior.create_delay)
        if behavior.create_status:
            code = behavior.create_status
            return web.json_response(status_body(code, "Injected", "injected failure"), status=code)
        errors = self.validate(pod)
        if errors:
            self.invalid.extend(errors)
            return web.json_response(status_body(422, "Invalid", "; ".join(errors)), status=422)
        key = f"{ns}/{name}"
        if key in self.store["pods"]:
            return web.json_response(
                status_body(409, "AlreadyExists", f'pods "{name}" already exists'), status=409
            )
        self.created.append(copy.deepcopy(pod))
        md = pod["metadata"]
        md.update(namespace=ns, uid=str(uuid.uuid4()), creationTimestamp=now())
        pod["status"] = {"phase": "Pending", "qosClass": "Burstable"}
        await self._emit("pods", "ADDED", pod)
        self._tasks[key] = asyncio.ensure_future(self._run_pod(key, behavior))
        return web.json_response(self.store["pods"][key], status=201)

    def validate(self, obj: dict) -> list[str]:
        errors = []
        for version in self.versions:
            try:
                kubernetes_validate.validate(obj, version, strict=True)
            except kubernetes_validate.ValidationError as e:
                path = ".".join(str(p) for p in e.path)
                errors.append(f"{version}: {path}: {e.message}")
        return errors

    async def _read_pod(self, request: web.Request) -> web.Response:
        self.requests[("GET", "pods")] += 1
        key = f"{request.match_info['ns']}/{request.match_info['name']}"
        if key not in self.store["pods"]:
            return web.json_response(status_body(404, "NotFound", "not found"), status=404)
        return web.json_response(self.store["pods"][key])

    async def _delete_pod(self, request: web.Request) -> web.Response:
        self.requests[("DELETE", "pods")] += 1
        key = f"{request.match_info['ns']}/{request.match_info['name']}"
        pod = self.store["pods"].get(key)
        if pod is None:
            return web.json_response(
                status_body(404, "NotFound", f'pods "{key}" not found'), status=404
            )
        self.deleted.append(request.match_info["name"])
        task = self._tasks.pop(key, None)
        if task:
            task.cancel()
        await self._stop_stubs(key)
        pod = copy.deepcopy(pod)
        pod["metadata"]["deletionTimestamp"] = now()
        await self._emit("pods", "MODIFIED", pod)
        asyncio.get_running_loop().call_later(
            0.05, lambda: asyncio.ensure_future(self._emit("pods", "DELETED", copy.deepcopy(pod)))
        )
        return web.json_response(pod)

    # --- a pod's life -----------------------------------------------------------------------

    def _container_statuses(self, pod: dict, ready: bool, state: dict) -> list[dict]:
        return [
            {
                "name": c["name"],
                "image": c["image"],
                "imageID": "",
                "ready": ready,
                "restartCount": 0,
                "started": ready,
                "state": copy.deepcopy(state),
                "lastState": {},
            }
            for c in pod["spec"]["containers"]
        ]

    async def _update(self, key: str, change) -> dict:
        pod = copy.deepcopy(self.store["pods"][key])
        change(pod)
        await self._emit("pods", "MODIFIED", pod)
        return pod

    async def _run_pod(self, key: str, b: Behavior) -> None:
        pod = self.store["pods"][key]
        if b.failure == "pending":
            await asyncio.sleep(0.1)
            message = "0/3 nodes are available: 3 Insufficient devices.kubevirt.io/kvm."
            condition = {
                "type": "PodScheduled",
                "status": "False",
                "reason": "Unschedulable",
                "message": message,
            }
            await self._update(key, lambda p: p["status"].update(conditions=[condition]))
            await self._event(pod, "Warning", "FailedScheduling", message)
            return
        await asyncio.sleep(0.05)
        waiting = {"waiting": {"reason": "ContainerCreating"}}

        def scheduled(p):
            p["spec"]["nodeName"] = "fake-node"
            p["status"].update(
                conditions=[{"type": "PodScheduled", "status": "True"}],
                containerStatuses=self._container_statuses(p, False, waiting),
            )

        await self._update(key, scheduled)
        await self._event(pod, "Normal", "Scheduled", f"Successfully assigned {key} to fake-node")
        if b.failure == "image-pull":
            await asyncio.sleep(0.1)
            image = pod["spec"]["containers"][-1]["image"]
            message = f'failed to pull image "{image}": not found'

            def pull_failed(p):
                for cs in p["status"]["containerStatuses"]:
                    cs["state"] = {"waiting": {"reason": "ErrImagePull", "message": message}}

            await self._update(key, pull_failed)
            await self._event(pod, "Warning", "Failed", message)
            return
        await asyncio.sleep(b.running_after)
        ip = await self._start_stubs(key, pod)

        def running(p):
            p["status"].update(
                phase="Running",
                podIP=ip,
                podIPs=[{"ip": ip}],
                startTime=now(),
                containerStatuses=self._container_statuses(
                    p, True, {"running": {"startedAt": now()}}
                ),
            )
            if b.failure == "oom":  # QEMU is killed before SPICE listens: never ready
                for cs in p["status"]["containerStatuses"]:
                    cs["ready"] = cs["name"] != "vm"

        await self._update(key, running)
        if b.failure == "oom":
            await asyncio.sleep(0.2)

            def oom(p):
                p["status"]["conditions"].append({"type": "Ready", "status": "False"})
                for cs in p["status"]["containerStatuses"]:
                    if cs["name"] == "vm" or len(p["status"]["containerStatuses"]) == 1:
                        cs.update(ready=False, restartCount=1)
                        cs["state"] = {"waiting": {"reason": "CrashLoopBackOff"}}
                        cs["lastState"] = {"terminated": {"reason": "OOMKilled", "exitCode": 137}}

            await self._update(key, oom)
            await self._event(pod, "Warning", "BackOff", "Back-off restarting failed container")

    async def _start_stubs(self, key: str, pod: dict) -> str:
        """Give the pod an address and answer HTTP on its container ports there."""
        n = self._next_ip
        self._next_ip += 1
        ip = f"127.{(n >> 16) & 255}.{(n >> 8) & 255}.{n & 255}"

        async def answer(request):
            return web.json_response({"fake": "lab server", "pod": key})

        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", answer)
        runners = []
        for c in pod["spec"]["containers"]:
            for port in c.get("ports") or []:
                runner = web.AppRunner(app, handle_signals=False, access_log=None)
                await runner.setup()
                await web.TCPSite(runner, ip, port["containerPort"]).start()
                runners.append(runner)
        self._stubs[key] = runners
        return ip

    async def _stop_stubs(self, key: str) -> None:
        for runner in self._stubs.pop(key, []):
            await runner.cleanup()

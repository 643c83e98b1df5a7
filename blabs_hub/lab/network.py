"""The guest's network: how a lab with ``network: internet`` reaches the outside (pure).

QEMU's own user-mode NAT (slirp) maps the gateway address 10.0.2.2 to the host's loopback,
so a guest could talk to every service that trusts "it comes from 127.0.0.1" on a lab host
(on Kubernetes: on the pod's loopback). passt is the same kind of unprivileged user-mode
NAT, run as a separate, self-sandboxing process, and ``--no-map-gw`` turns that mapping
off: the guest reaches what the host's network reaches, and nothing on its loopback.

Each QEMU gets its own passt on one end of a socket pair: no socket file, no start-up race,
and passt exits by itself when QEMU closes its end. The fd number is only known when QEMU
starts, so the argv carries :data:`NETWORK_FD` until :func:`with_network_fd` fills it in;
what a saved VM state is compared on (``readystate.machine_key``) stays the same from lab to
lab.
"""

BACKENDS = ("passt", "slirp")
NETDEV_ID = "net0"
NETWORK_FD = "{network_fd}"


def netdev_value(backend: str) -> str:
    """The ``-netdev`` value of a lab with a network."""
    if backend == "passt":
        return f"stream,id={NETDEV_ID},addr.type=fd,addr.str={NETWORK_FD}"
    if backend == "slirp":
        return f"user,id={NETDEV_ID}"
    raise ValueError(f"network backend must be one of {', '.join(BACKENDS)}, got {backend!r}")


def needs_passt(argv: list[str]) -> bool:
    """True when ``argv`` expects a passt socket (it carries the fd placeholder)."""
    return any(NETWORK_FD in arg for arg in argv)


def with_network_fd(argv: list[str], fd: int) -> list[str]:
    """``argv`` with QEMU's end of the socket pair filled in."""
    return [arg.replace(NETWORK_FD, str(fd)) for arg in argv]


def passt_argv(passt: str, fd: int) -> list[str]:
    """passt serving one QEMU over an inherited, connected socket.

    No port is forwarded to the guest, the gateway is not the host, and passt logs to
    stderr (the launcher keeps the lines) instead of a syslog that containers lack.
    """
    return [
        passt,
        "--foreground",
        "--quiet",
        "--stderr",
        "--no-map-gw",
        "--tcp-ports",
        "none",
        "--udp-ports",
        "none",
        "--fd",
        str(fd),
    ]

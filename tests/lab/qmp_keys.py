"""Typing into a guest through a test-only QMP socket (the launcher holds the main one)."""

import asyncio
import secrets
import string
from pathlib import Path

from qemu.qmp import QMPClient

SHIFTED = {
    "$": "4",
    "%": "5",
    "(": "9",
    ")": "0",
    "+": "equal",
    ">": "dot",
    "<": "comma",
    "_": "minus",
    "|": "backslash",
    ":": "semicolon",
}
PLAIN = {" ": "spc", "\n": "ret", "-": "minus", ".": "dot", "/": "slash", "=": "equal"}


def keys_socket() -> Path:
    """A fresh path for the test's own QMP socket (short: sockets need < 108 bytes)."""
    return Path(f"/tmp/blabs-keys-{secrets.token_hex(4)}.sock")


def monitor_args(socket_path) -> str:
    """``BLABS_QEMU_EXTRA_ARGS`` for a second, test-only QMP monitor at ``socket_path``."""
    return f"-qmp unix:{socket_path},server=on,wait=off"


def qcodes(char: str) -> list[str]:
    """QMP ``send-key`` qcodes for one character of a US keyboard."""
    if char in string.ascii_lowercase or char in string.digits:
        return [char]
    if char in string.ascii_uppercase:
        return ["shift", char.lower()]
    if char in PLAIN:
        return [PLAIN[char]]
    if char in SHIFTED:
        return ["shift", SHIFTED[char]]
    raise ValueError(f"no key for {char!r}")


async def type_text(qmp_socket, text: str) -> None:
    client = QMPClient("blabs-test-keys")
    await client.connect(str(qmp_socket))
    try:
        for char in text:
            keys = [{"type": "qcode", "data": k} for k in qcodes(char)]
            await client.execute("send-key", {"keys": keys})
            await asyncio.sleep(0.03)
    finally:
        await client.disconnect()


async def screendump(qmp_socket, filename) -> None:
    client = QMPClient("blabs-test-screen")
    await client.connect(str(qmp_socket))
    try:
        await client.execute("screendump", {"filename": str(filename)})
    finally:
        await client.disconnect()


async def hmp(qmp_socket, command: str) -> str:
    """Run a human-monitor command (e.g. ``qemu-io``) through the test-only QMP socket."""
    client = QMPClient("blabs-test-hmp")
    await client.connect(str(qmp_socket))
    try:
        return await client.execute("human-monitor-command", {"command-line": command})
    finally:
        await client.disconnect()

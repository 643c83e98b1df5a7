"""Just enough of the SPICE wire protocol to tell keyboard/mouse input from everything else.

Idle means "no keyboard or mouse input". spice-html5 opens one websocket per SPICE channel,
and the first bytes the client sends on each are the link message naming the channel type.
The relay feeds every client→server payload of a connection to one :class:`ClientStream`,
which answers how many *input* messages it carried. Screen updates flow server→client and
are never fed here; display-channel acks (whose message number 101 equals KEY_DOWN's) are
client→server but on another channel type, so they do not count either.

Pure code: no sockets, no clock. Layout from spice-protocol's ``protocol.h``:

- link header: magic ``REDQ``, major u32, minor u32, size u32 (little-endian), then ``size``
  bytes of SpiceLinkMess: connection_id u32, channel_type u8, channel_id u8,
  num_common_caps u32, num_channel_caps u32, caps_offset u32, then the capability words
  at ``caps_offset`` (relative to the start of SpiceLinkMess).
- then the client's ticket: with common cap PROTOCOL_AUTH_SELECTION, an auth mechanism u32
  (1 = SPICE ticket) followed by a 128-byte RSA-encrypted ticket; without it, the ticket alone.
- then data messages: with common cap MINI_HEADER, type u16 + size u32 + body; otherwise the
  full header serial u64 + type u16 + size u32 + sub_list u32 + body.
"""

import struct
from dataclasses import dataclass, field

SPICE_MAGIC = b"REDQ"
LINK_HEADER = struct.Struct("<4sIII")
LINK_MESS = struct.Struct("<IBBIII")
MINI_HEADER = struct.Struct("<HI")
FULL_HEADER = struct.Struct("<QHII")
TICKET_BYTES = 128  # SPICE_TICKET_KEY_PAIR_LENGTH (1024 bits) / 8
AUTH_MECHANISM_BYTES = 4
AUTH_SPICE = 1
# A link message is a few dozen bytes; anything past this is not SPICE (or hostile).
MAX_LINK_SIZE = 4096

COMMON_CAP_AUTH_SELECTION = 0
COMMON_CAP_MINI_HEADER = 3

CHANNEL_NAMES = {
    1: "main",
    2: "display",
    3: "inputs",
    4: "cursor",
    5: "playback",
    6: "record",
    7: "tunnel",
    8: "smartcard",
    9: "usbredir",
    10: "port",
    11: "webdav",
}
CHANNEL_MAIN = 1
CHANNEL_INPUTS = 3

# Client→server messages of the inputs channel (SPICE_MSGC_INPUTS_*): keys and mouse.
INPUT_MESSAGE_TYPES = frozenset(
    {
        101,  # KEY_DOWN
        102,  # KEY_UP
        103,  # KEY_MODIFIERS
        104,  # KEY_SCANCODE
        111,  # MOUSE_MOTION
        112,  # MOUSE_POSITION
        113,  # MOUSE_PRESS
        114,  # MOUSE_RELEASE
    }
)


class NotSpice(ValueError):
    """The client's first bytes are not a SPICE link message."""


@dataclass(frozen=True)
class SpiceLink:
    """What the client asked for in its link message."""

    version: tuple[int, int]
    connection_id: int
    channel_type: int
    channel_id: int
    common_caps: tuple[int, ...]
    channel_caps: tuple[int, ...]
    size: int  # bytes the link occupied on the wire, header included

    @property
    def channel_name(self) -> str:
        return CHANNEL_NAMES.get(self.channel_type, f"type-{self.channel_type}")

    def has_common_cap(self, cap: int) -> bool:
        word, bit = divmod(cap, 32)
        return word < len(self.common_caps) and bool(self.common_caps[word] >> bit & 1)


def parse_link(data: bytes) -> SpiceLink | None:
    """Parse the link message at the start of ``data``; None while it is incomplete.

    Raises :class:`NotSpice` when the bytes cannot be a SPICE link message.
    """
    if len(data) < LINK_HEADER.size:
        if not SPICE_MAGIC.startswith(bytes(data[:4])):
            raise NotSpice("bad magic")
        return None
    magic, major, minor, size = LINK_HEADER.unpack_from(data)
    if magic != SPICE_MAGIC:
        raise NotSpice(f"bad magic {magic!r}")
    if not LINK_MESS.size <= size <= MAX_LINK_SIZE:
        raise NotSpice(f"link message size {size} out of range")
    if len(data) < LINK_HEADER.size + size:
        return None
    body = bytes(data[LINK_HEADER.size : LINK_HEADER.size + size])
    connection_id, channel_type, channel_id, n_common, n_channel, caps_offset = (
        LINK_MESS.unpack_from(body)
    )
    caps_end = caps_offset + 4 * (n_common + n_channel)
    if caps_offset < LINK_MESS.size or caps_end > size:
        raise NotSpice("capabilities outside the link message")
    words = struct.unpack_from(f"<{n_common + n_channel}I", body, caps_offset)
    return SpiceLink(
        version=(major, minor),
        connection_id=connection_id,
        channel_type=channel_type,
        channel_id=channel_id,
        common_caps=tuple(words[:n_common]),
        channel_caps=tuple(words[n_common:]),
        size=LINK_HEADER.size + size,
    )


def is_input(channel_type: int, message_type: int) -> bool:
    """Is a client→server message of this type on this channel keyboard or mouse input?"""
    return channel_type == CHANNEL_INPUTS and message_type in INPUT_MESSAGE_TYPES


@dataclass
class ClientStream:
    """Follows the client→server bytes of one SPICE channel connection.

    ``feed()`` takes payloads in arrival order (websocket message boundaries do not matter)
    and returns the number of input messages completed by them. When the stream cannot be
    followed (not SPICE, SASL auth), ``opaque`` is set and, on an inputs channel, every later
    payload counts as one input: wrongly keeping a lab alive beats wrongly stopping it.
    Only inputs channels are followed past the link, so bulk channels (display, file
    transfer on main) cost one length check per payload.
    """

    link: SpiceLink | None = None
    opaque: bool = False
    messages: int = 0  # data messages seen after the link and ticket
    inputs: int = 0
    _buf: bytearray = field(default_factory=bytearray)
    _ticket_left: int = -1  # bytes of ticket still expected; -1 = link not parsed yet
    _auth_checked: bool = False
    _body_left: int = 0  # bytes of the current message body still to skip

    @property
    def channel_type(self) -> int | None:
        return self.link.channel_type if self.link else None

    def feed(self, payload: bytes) -> int:
        if self.link is not None and self.link.channel_type != CHANNEL_INPUTS:
            return 0  # nothing after the link of another channel can be input: don't buffer
        if self.opaque:
            counted = int(bool(payload) and self.channel_type == CHANNEL_INPUTS)
            self.inputs += counted
            return counted
        self._buf += payload
        counted = 0
        try:
            counted = self._advance()
        except NotSpice:
            self.opaque = True
            self._buf.clear()
        self.inputs += counted
        return counted

    def _advance(self) -> int:
        if self.link is None:
            link = parse_link(self._buf)
            if link is None:
                return 0
            self.link = link
            del self._buf[: link.size]
            self._ticket_left = TICKET_BYTES
            if link.has_common_cap(COMMON_CAP_AUTH_SELECTION):
                self._ticket_left += AUTH_MECHANISM_BYTES
            else:
                self._auth_checked = True
        if self._ticket_left:
            if not self._auth_checked:
                if len(self._buf) < AUTH_MECHANISM_BYTES:
                    return 0
                (mechanism,) = struct.unpack_from("<I", self._buf)
                if mechanism != AUTH_SPICE:
                    raise NotSpice(f"auth mechanism {mechanism} is not followed")
                self._auth_checked = True
            taken = min(self._ticket_left, len(self._buf))
            del self._buf[:taken]
            self._ticket_left -= taken
            if self._ticket_left:
                return 0
        return self._messages()

    def _messages(self) -> int:
        mini = self.link.has_common_cap(COMMON_CAP_MINI_HEADER)
        header = MINI_HEADER if mini else FULL_HEADER
        counted = 0
        while True:
            if self._body_left:
                taken = min(self._body_left, len(self._buf))
                del self._buf[:taken]
                self._body_left -= taken
                if self._body_left:
                    return counted
            if len(self._buf) < header.size:
                return counted
            if mini:
                msg_type, size = header.unpack_from(self._buf)
            else:
                _serial, msg_type, size, _sub_list = header.unpack_from(self._buf)
            del self._buf[: header.size]
            self._body_left = size
            self.messages += 1
            if is_input(self.link.channel_type, msg_type):
                counted += 1

"""The SPICE link parser and the "is this input?" decision, on bytes alone."""

import struct

import pytest

from blabs_hub.lab.console.spice import (
    CHANNEL_INPUTS,
    ClientStream,
    NotSpice,
    is_input,
    parse_link,
)
from tests.console.parts import link_message, mini

FAKE_TICKET = struct.pack("<I", 1) + bytes(128)


def key_down(code=0x1E):
    return mini(101, struct.pack("<I", code))


def test_parse_link_reads_channel_and_caps():
    data = link_message(3, connection_id=0xDEADBEEF, channel_id=2, channel_caps=(5,))
    link = parse_link(data + b"trailing")
    assert link.channel_type == 3
    assert link.channel_name == "inputs"
    assert link.channel_id == 2
    assert link.connection_id == 0xDEADBEEF
    assert link.version == (2, 2)
    assert link.channel_caps == (5,)
    assert link.has_common_cap(0) and link.has_common_cap(3) and not link.has_common_cap(1)
    assert link.size == len(data)


def test_parse_link_waits_for_the_whole_message():
    data = link_message(1)
    for cut in (0, 3, 15, 16, len(data) - 1):
        assert parse_link(data[:cut]) is None


@pytest.mark.parametrize(
    "data",
    [
        b"GET / HTTP/1.1\r\n\r\n",
        b"REDX" + bytes(40),
        struct.pack("<4sIII", b"REDQ", 2, 2, 1_000_000) + bytes(18),  # absurd size
        struct.pack("<4sIII", b"REDQ", 2, 2, 18) + struct.pack("<IBBIII", 0, 3, 0, 9, 0, 18),
    ],
)
def test_parse_link_rejects_what_is_not_spice(data):
    with pytest.raises(NotSpice):
        parse_link(data)


def test_is_input_needs_the_inputs_channel():
    assert is_input(3, 101) and is_input(3, 112) and is_input(3, 114)
    assert not is_input(3, 1)  # ACK_SYNC
    assert not is_input(3, 3)  # PONG
    assert not is_input(2, 101)  # DISPLAY_INIT has KEY_DOWN's number
    assert not is_input(1, 105)  # MOUSE_MODE_REQUEST on main


def test_inputs_channel_counts_keys_and_mouse_but_not_link_ticket_or_acks():
    stream = ClientStream()
    assert stream.feed(link_message(CHANNEL_INPUTS, connection_id=7)) == 0
    assert stream.feed(FAKE_TICKET) == 0
    assert stream.feed(mini(1, struct.pack("<I", 1))) == 0  # ACK_SYNC
    assert stream.feed(mini(3, bytes(12))) == 0  # PONG
    assert stream.feed(key_down()) == 1
    assert stream.feed(mini(112, struct.pack("<IIBB", 10, 20, 0, 0))) == 1  # MOUSE_POSITION
    assert stream.inputs == 2 and stream.messages == 4


def test_message_boundaries_do_not_matter():
    wire = (
        link_message(CHANNEL_INPUTS)
        + FAKE_TICKET
        + mini(2)
        + key_down()
        + mini(102, struct.pack("<I", 0x9E))
        + mini(111, struct.pack("<iiI", 1, 1, 0))
    )
    for step in (1, 3, 7, 64):
        stream = ClientStream()
        counted = sum(stream.feed(wire[i : i + step]) for i in range(0, len(wire), step))
        assert counted == 3, step


def test_display_channel_never_counts_even_with_input_numbers():
    stream = ClientStream()
    stream.feed(link_message(2) + FAKE_TICKET)
    assert stream.feed(mini(101, bytes(14))) == 0  # DISPLAY_INIT
    assert stream.feed(key_down() * 100) == 0
    assert stream.inputs == 0


def test_full_header_when_client_does_not_ask_for_mini_headers():
    stream = ClientStream()
    stream.feed(link_message(CHANNEL_INPUTS, common_caps=(1,)) + FAKE_TICKET)
    full = struct.pack("<QHII", 1, 101, 4, 0) + struct.pack("<I", 0x1E)
    assert stream.feed(full + struct.pack("<QHII", 2, 2, 0, 0)) == 1


def test_without_auth_selection_the_ticket_has_no_mechanism():
    stream = ClientStream()
    stream.feed(link_message(CHANNEL_INPUTS, common_caps=(1 << 3,)) + bytes(128))
    assert stream.feed(key_down()) == 1


def test_unfollowable_inputs_stream_counts_every_payload():
    stream = ClientStream()
    stream.feed(link_message(CHANNEL_INPUTS) + struct.pack("<I", 2))  # SASL: not followed
    assert stream.opaque
    assert stream.feed(b"anything") == 1


def test_garbage_is_opaque_but_not_input_without_a_channel():
    stream = ClientStream()
    assert stream.feed(b"GET / HTTP/1.1\r\n") == 0
    assert stream.opaque and stream.feed(b"more") == 0

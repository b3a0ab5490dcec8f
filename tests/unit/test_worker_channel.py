"""The channel between a supervisor and an executor (conveyor/worker/channel.py): each message
arrives whole and in order however the bytes are cut on the way, messages far larger than the
stream's buffer pass, sending never waits for the reader, and a gone or broken other side is
ChannelClosed, never a hang or a half message."""

from __future__ import annotations

import asyncio
import pickle
import socket
import struct
from collections.abc import Awaitable, Callable
from typing import Any

import pytest

from conveyor.worker.channel import MAX_MESSAGE, Channel, ChannelClosed


def run(test: Callable[[], Awaitable[None]]) -> None:
    asyncio.run(asyncio.wait_for(test(), timeout=30))


async def pair() -> tuple[Channel, Channel]:
    left, right = socket.socketpair()
    return await Channel.open(left), await Channel.open(right)


async def raw_pair() -> tuple[Channel, socket.socket]:
    """A channel, and the bare socket of its other side (to write bytes as we please)."""
    left, right = socket.socketpair()
    return await Channel.open(left), right


def frame(message: tuple[Any, ...]) -> bytes:
    data = pickle.dumps(message)
    return struct.pack("!Q", len(data)) + data


async def trickle(sock: socket.socket, data: bytes, sizes: list[int]) -> None:
    """Write `data` in pieces of the given sizes (the last piece takes the rest), each apart."""
    loop = asyncio.get_running_loop()
    sock.setblocking(False)
    start = 0
    for size in [*sizes, len(data)]:
        piece = data[start : start + size]
        if piece:
            await loop.sock_sendall(sock, piece)
            await asyncio.sleep(0.01)  # the reader sees each piece on its own
        start += len(piece)


def test_messages_arrive_whole_and_in_order() -> None:
    async def test() -> None:
        a, b = await pair()
        messages = [("attempt", i, {"payload": "x" * i}) for i in range(50)]
        for message in messages:
            a.send(message)
        assert [await b.receive() for _ in messages] == messages
        b.send(("reply", 1, True, None))  # both ways on one channel
        assert await a.receive() == ("reply", 1, True, None)
        a.close()
        b.close()

    run(test)


def test_a_message_cut_anywhere_arrives_whole() -> None:
    async def test() -> None:
        channel, sock = await raw_pair()
        message = ("outcome", "run_1", b"\x00" * 1000)
        data = frame(message) * 2
        # the header cut in three, the body in pieces, the last one running into the next message
        receiving = asyncio.ensure_future(channel.receive())
        await trickle(sock, data, [3, 2, 3, 1, 500])
        assert await receiving == message
        assert await channel.receive() == message
        channel.close()
        sock.close()

    run(test)


def test_a_message_far_larger_than_the_buffer_passes_and_sending_does_not_wait() -> None:
    async def test() -> None:
        a, b = await pair()
        big = ("attempt", "x" * (40 * 1024 * 1024), 1)  # 40 MB; the stream's buffer is 1 MB
        a.send(big)  # returns at once: buffered, written as the other side reads
        a.send(("after", 2))
        assert await b.receive() == big
        assert await b.receive() == ("after", 2)
        await a.drain()
        a.close()
        b.close()

    run(test)


def test_the_other_side_gone_is_channel_closed() -> None:
    async def test() -> None:
        a, b = await pair()
        b.close()
        with pytest.raises(ChannelClosed):
            await a.receive()

    run(test)


def test_the_other_side_gone_mid_message_is_channel_closed() -> None:
    async def test() -> None:
        channel, sock = await raw_pair()
        data = frame(("outcome", "x" * 100))
        sock.sendall(data[:20])  # the header and part of the body
        sock.close()
        with pytest.raises(ChannelClosed):
            await channel.receive()

    run(test)


def test_a_message_waiting_when_the_other_side_closes_is_still_read() -> None:
    async def test() -> None:
        a, b = await pair()
        a.send(("logs", ["last line"]))
        await a.drain()
        a.close()
        assert await b.receive() == ("logs", ["last line"])
        with pytest.raises(ChannelClosed):
            await b.receive()

    run(test)


def test_writing_to_a_gone_side_is_channel_closed() -> None:
    async def test() -> None:
        a, b = await pair()
        b.close()
        await asyncio.sleep(0.01)
        with pytest.raises(ChannelClosed):
            for _ in range(3):  # the first write may still reach the socket's buffer
                a.send(("attempt", "x" * 100))
                await a.drain()

    run(test)


def test_sending_on_a_closed_channel_is_channel_closed() -> None:
    async def test() -> None:
        a, _ = await pair()
        a.close()
        with pytest.raises(ChannelClosed, match="closed"):
            a.send(("stop",))

    run(test)


def test_a_header_beyond_any_sane_size_is_channel_closed() -> None:
    async def test() -> None:
        channel, sock = await raw_pair()
        sock.sendall(struct.pack("!Q", MAX_MESSAGE + 1))
        with pytest.raises(ChannelClosed, match=f"{MAX_MESSAGE + 1} bytes"):
            await channel.receive()
        sock.close()

    run(test)

"""The channel between a supervisor and one executor: pickled messages, length-prefixed, over a
socket pair, read and written with asyncio streams.

Streams, not blocking reads on the event loop's file descriptor: a message of any size (a
large payload or output) arrives whole however many reads it takes, and a send never blocks
the loop; it is buffered and written as the other side reads. Every method runs on the loop's
thread.
"""

from __future__ import annotations

import asyncio
import pickle
import socket
import struct
from typing import Any

_HEADER = struct.Struct("!Q")
MAX_MESSAGE = 512 * 1024 * 1024  # a sanity bound: payloads and outputs are far smaller


class ChannelClosed(Exception):
    """The other side of the channel is gone."""


class Channel:
    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._reader = reader
        self._writer = writer

    @classmethod
    async def open(cls, sock: socket.socket) -> Channel:
        sock.setblocking(False)
        reader, writer = await asyncio.open_connection(sock=sock, limit=1024 * 1024)
        return cls(reader, writer)

    def send(self, message: tuple[Any, ...]) -> None:
        """Queue a message for the other side (never blocks)."""
        if self._writer.is_closing():
            raise ChannelClosed("the channel is closed")
        data = pickle.dumps(message, protocol=pickle.HIGHEST_PROTOCOL)
        self._writer.write(_HEADER.pack(len(data)) + data)

    async def receive(self) -> tuple[Any, ...]:
        """The next message; ChannelClosed when the other side has gone."""
        try:
            header = await self._reader.readexactly(_HEADER.size)
            (size,) = _HEADER.unpack(header)
            if size > MAX_MESSAGE:
                raise ChannelClosed(f"a message of {size} bytes is beyond any sane size")
            message: tuple[Any, ...] = pickle.loads(await self._reader.readexactly(size))
            return message
        except (asyncio.IncompleteReadError, ConnectionError, OSError) as exc:
            raise ChannelClosed(str(exc)) from exc

    async def drain(self) -> None:
        try:
            await self._writer.drain()
        except (ConnectionError, OSError) as exc:
            raise ChannelClosed(str(exc)) from exc

    def close(self) -> None:
        self._writer.close()

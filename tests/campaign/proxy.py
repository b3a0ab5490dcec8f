"""A TCP proxy that delays every chunk by the number of seconds in a control file (`tc` here
has no netem): `python -m tests.campaign.proxy PORT TARGET_HOST TARGET_PORT CONTROL_FILE`.
The file holds one number (both ways) or two (towards the target, then back from it). Chunks
keep their order; a delay of 0 passes them straight on."""

from __future__ import annotations

import asyncio
import sys
import time
from pathlib import Path


class Delay:
    """The delay of one direction: `way` 0 towards the target, 1 back from it."""

    def __init__(self, control: Path, way: int) -> None:
        self.control = control
        self.way = way
        self.value = 0.0
        self.read_at = 0.0

    def now(self) -> float:
        if time.monotonic() - self.read_at > 0.2:
            self.read_at = time.monotonic()
            try:
                values = [float(v) for v in self.control.read_text().split()] or [0.0]
                self.value = values[min(self.way, len(values) - 1)]
            except (OSError, ValueError):
                self.value = 0.0
        return self.value


async def pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, delay: Delay) -> None:
    queue: asyncio.Queue[tuple[float, bytes]] = asyncio.Queue()

    async def send() -> None:
        while True:
            due, chunk = await queue.get()
            if not chunk:
                break
            wait = due - time.monotonic()
            if wait > 0:
                await asyncio.sleep(wait)
            writer.write(chunk)
            await writer.drain()

    sender = asyncio.create_task(send())
    try:
        while chunk := await reader.read(65536):
            queue.put_nowait((time.monotonic() + delay.now(), chunk))
        queue.put_nowait((0.0, b""))
        await sender
    except (ConnectionError, OSError):
        pass
    finally:
        sender.cancel()
        writer.close()


async def main(port: int, host: str, target_port: int, control: Path) -> None:
    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            upstream_reader, upstream_writer = await asyncio.open_connection(host, target_port)
        except OSError:
            writer.close()
            return
        await asyncio.gather(
            pipe(reader, upstream_writer, Delay(control, 0)),
            pipe(upstream_reader, writer, Delay(control, 1)),
        )

    server = await asyncio.start_server(handle, "127.0.0.1", port)
    async with server:
        await server.serve_forever()


if __name__ == "__main__":
    asyncio.run(main(int(sys.argv[1]), sys.argv[2], int(sys.argv[3]), Path(sys.argv[4])))

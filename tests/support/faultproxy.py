"""A TCP proxy that can misbehave like a bad link or a sick cloud: pass, answer 500, hang, or reset.

It stands between the hub and the real reference cloud, so neither has test code in it.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import struct
import threading
from typing import Literal

Mode = Literal["pass", "error500", "hang", "reset"]

RESPONSE_500 = (
    b"HTTP/1.1 500 Internal Server Error\r\nContent-Type: text/plain\r\nContent-Length: 14\r\n"
    b"Connection: close\r\n\r\ninjected fault"
)


class FaultProxy:
    def __init__(self, target_port: int, mode: Mode = "pass") -> None:
        self.target_port = target_port
        self.mode: Mode = mode
        self.port = 0
        self.connections = 0
        self.faults = 0
        self._loop = asyncio.new_event_loop()
        self._writers: set[asyncio.StreamWriter] = set()
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def start(self) -> FaultProxy:
        self._thread.start()
        self._ready.wait(5)
        return self

    def set_mode(self, mode: Mode) -> None:
        """Switch behaviour; open connections are cut so that kept-alive ones do not slip through."""

        def switch() -> None:
            self.mode = mode
            for writer in list(self._writers):
                writer.close()

        self._loop.call_soon_threadsafe(switch)

    def stop(self) -> None:
        async def shutdown() -> None:
            for writer in list(self._writers):
                writer.close()
            tasks = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            self._loop.stop()

        asyncio.run_coroutine_threadsafe(shutdown(), self._loop)
        self._thread.join(5)

    def _run(self) -> None:
        asyncio.set_event_loop(self._loop)
        server = self._loop.run_until_complete(asyncio.start_server(self._handle, "127.0.0.1", 0))
        self.port = server.sockets[0].getsockname()[1]
        self._ready.set()
        self._loop.run_forever()
        server.close()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        self._writers.add(writer)
        try:
            mode = self.mode
            if mode == "pass":
                await self._pipe_to_target(reader, writer)
                return
            with contextlib.suppress(asyncio.IncompleteReadError, ConnectionError):
                await reader.readuntil(b"\r\n\r\n")
            self.faults += 1
            if mode == "error500":
                writer.write(RESPONSE_500)
                await writer.drain()
            elif mode == "hang":
                await reader.read()  # never answers; returns when set_mode or the client closes the connection
            elif mode == "reset":
                transport = writer.transport
                sock = transport.get_extra_info("socket")
                if sock is not None:
                    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                transport.abort()
                return
        except (ConnectionError, OSError):
            pass
        finally:
            self._writers.discard(writer)
            with contextlib.suppress(Exception):
                writer.close()

    async def _pipe_to_target(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.target_port)
        except OSError:
            return
        self._writers.add(up_writer)

        async def pump(src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
            with contextlib.suppress(ConnectionError, OSError):
                while data := await src.read(65536):
                    dst.write(data)
                    await dst.drain()
            with contextlib.suppress(Exception):
                dst.close()

        try:
            await asyncio.gather(pump(reader, up_writer), pump(up_reader, writer))
        finally:
            self._writers.discard(up_writer)

"""A small in-process event bus: services tell each other things without importing each other.

Topics are dotted strings; a subscriber to "sync" receives "sync.delivered" and "sync.failed" too.
Delivery is asynchronous and bounded: a slow subscriber loses its oldest messages, never blocks the
publisher (a stuck camera worker must not stop an emergency broadcast from being announced).

Commands are the other half: a service *serves* a named command ("lighting.override") and a caller (the
technician page, later cloud commands) awaits its answer, so a refusal reaches the person who asked, with
the service's own words, instead of being lost in a log.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from hub import clock

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Message:
    topic: str
    data: dict[str, Any] = field(default_factory=dict)
    at: float = field(default_factory=clock.wall)


CommandHandler = Callable[[dict[str, Any]], Awaitable[dict[str, Any]]]


class CommandError(Exception):
    """A command was refused; the message is meant for the person who asked (it names what is wrong)."""


class NoHandlerError(CommandError):
    """Nothing serves that command (the service is not configured, or it is restarting)."""


class Subscription:
    def __init__(self, bus: EventBus, prefix: str, maxsize: int) -> None:
        self._bus = bus
        self.prefix = prefix
        self.queue: asyncio.Queue[Message] = asyncio.Queue(maxsize)
        self.lost = 0

    def matches(self, topic: str) -> bool:
        return self.prefix in ("", "*") or topic == self.prefix or topic.startswith(self.prefix + ".")

    def offer(self, message: Message) -> None:
        if self.queue.full():
            self.queue.get_nowait()
            self.lost += 1
        self.queue.put_nowait(message)

    async def get(self) -> Message:
        return await self.queue.get()

    def close(self) -> None:
        self._bus._subscriptions.discard(self)

    def __aiter__(self) -> AsyncIterator[Message]:
        return self._iterate()

    async def _iterate(self) -> AsyncIterator[Message]:
        while True:
            yield await self.queue.get()


class EventBus:
    def __init__(self) -> None:
        self._subscriptions: set[Subscription] = set()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._handlers: dict[str, CommandHandler] = {}

    def serve(self, command: str, handler: CommandHandler) -> Callable[[], None]:
        """Answer `command` with `handler` (raising CommandError to refuse); returns the function that withdraws it.
        The newest handler wins: a restarted service takes over from its previous instance."""
        self._handlers[command] = handler

        def withdraw() -> None:
            if self._handlers.get(command) is handler:
                del self._handlers[command]

        return withdraw

    def serves(self, command: str) -> bool:
        return command in self._handlers

    async def call(self, command: str, timeout: float = 10.0, **data: Any) -> dict[str, Any]:
        handler = self._handlers.get(command)
        if handler is None:
            raise NoHandlerError(f"nothing on this hub handles {command!r} right now")
        try:
            async with asyncio.timeout(timeout):
                return await handler(data)
        except TimeoutError:
            raise CommandError(f"{command} did not answer within {timeout:g} s") from None

    def bind(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop

    def subscribe(self, prefix: str, maxsize: int = 256) -> Subscription:
        sub = Subscription(self, prefix, maxsize)
        self._subscriptions.add(sub)
        return sub

    def publish(self, topic: str, **data: Any) -> None:
        """Publish from the event loop's thread."""
        message = Message(topic, data)
        for sub in list(self._subscriptions):
            if sub.matches(topic):
                sub.offer(message)

    def publish_threadsafe(self, topic: str, **data: Any) -> None:
        """Publish from another thread (the store writer, a driver's reader thread)."""
        if self._loop is None or self._loop.is_closed():
            return
        self._loop.call_soon_threadsafe(lambda: self.publish(topic, **data))

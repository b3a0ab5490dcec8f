"""The interface every TTS provider implements, and the voices the API accepts."""

from __future__ import annotations

from typing import Protocol

# OpenAI's voice names; the local engine maps each to an espeak-ng voice.
VOICES = (
    "alloy",
    "ash",
    "ballad",
    "coral",
    "echo",
    "fable",
    "nova",
    "onyx",
    "sage",
    "shimmer",
    "verse",
)


class SpeechError(Exception):
    """A provider could not turn text into speech. `retryable` says whether trying again can help
    (a timeout, a rate limit, a 5xx) or not (a bad request, a wrong key)."""

    def __init__(self, message: str, *, retryable: bool = False) -> None:
        super().__init__(message)
        self.retryable = retryable


class SpeechProvider(Protocol):
    """Turns one chunk of text into one MP3 file (its bytes)."""

    name: str

    async def synthesize(self, text: str, voice: str) -> bytes: ...

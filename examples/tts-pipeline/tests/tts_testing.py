"""What the example's tests share: small MP3s made on the spot (a sine tone encoded by LAME,
with or without the tags the local speech engine writes), made-up stories, GraphQL calls, and
the platform the pipeline tests run on (`conveyor.testing.platform`'s `conveyor dev`)."""

from __future__ import annotations

import io
import math
import random
import struct
from pathlib import Path
from typing import Any

import lameenc
from mutagen.mp3 import MP3
from tts_pipeline import mp3
from tts_pipeline.speech.espeak import _id3v1_trailer, _id3v2_tag

from conveyor.testing.platform import DevPlatform


def tone(seconds: float, rate: int = 22050, hz: float = 440.0) -> bytes:
    """MP3 frames of a sine tone, straight from LAME (no tags)."""
    samples = int(seconds * rate)
    pcm = struct.pack(
        f"<{samples}h", *(int(8000 * math.sin(2 * math.pi * hz * i / rate)) for i in range(samples))
    )
    encoder = lameenc.Encoder()
    encoder.set_bit_rate(48)
    encoder.set_in_sample_rate(rate)
    encoder.set_channels(1)
    encoder.set_quality(7)
    return bytes(encoder.encode(pcm) + encoder.flush())


def tagged(frames: bytes) -> bytes:
    """The frames between an ID3v2 tag and an ID3v1 trailer, as the local engine writes them."""
    return _id3v2_tag("test encoder") + frames + _id3v1_trailer()


def player_info(data: bytes) -> tuple[float, int]:
    """Length in seconds and sample rate as mutagen, an independent MP3 reader, sees them."""
    info = MP3(io.BytesIO(data)).info
    assert info is not None
    return float(info.length), int(info.sample_rate)


def tagged_tone(seconds: float) -> bytes:
    return tagged(tone(seconds))


def with_info_frame(frames: bytes) -> bytes:
    """The frames behind a copy of their first frame marked as a LAME Info frame."""
    first = mp3.parse_frame(frames, 0)
    header = bytearray(frames[: first.length])
    side_info = 9  # MPEG-2 mono
    header[4 + side_info : 4 + side_info + 4] = b"Info"
    return bytes(header) + frames


def story(min_chars: int, seed: int = 0) -> str:
    """Made-up English prose of at least `min_chars` characters, the same for the same seed."""
    rng = random.Random(seed)
    words = (
        "the",
        "old",
        "lighthouse",
        "keeper",
        "counted",
        "every",
        "ship",
        "that",
        "passed",
        "harbour",
        "at",
        "night",
        "while",
        "his",
        "daughter",
        "wrote",
        "their",
        "names",
        "in",
        "a",
        "blue",
        "notebook",
        "and",
        "wind",
        "carried",
        "salt",
        "across",
        "quiet",
        "streets",
        "where",
        "children",
        "dreamed",
        "of",
        "distant",
        "islands",
    )
    sentences: list[str] = []
    length = 0
    while length < min_chars:
        sentence = " ".join(rng.choice(words) for _ in range(rng.randint(6, 22)))
        sentence = sentence[0].upper() + sentence[1:] + rng.choice([".", ".", ".", "!", "?"])
        sentences.append(sentence)
        length += len(sentence) + 1
    return " ".join(sentences)


def graphql(client: Any, query: str, **variables: Any) -> dict[str, Any]:
    """The `data` of a GraphQL answer; fails the test on any error."""
    response = client.post("/graphql", json={"query": query, "variables": variables})
    assert response.status_code == 200, response.text
    body = response.json()
    assert not body.get("errors"), body["errors"]
    return dict(body["data"])


def graphql_errors(client: Any, query: str, **variables: Any) -> list[str]:
    body = client.post("/graphql", json={"query": query, "variables": variables}).json()
    return [e["message"] for e in body.get("errors") or []]


class Platform(DevPlatform):
    """A running `conveyor dev` on a copy of the example, with its data folder (TTS_DATA_DIR)."""

    @property
    def data(self) -> Path:
        assert self.env is not None
        return Path(self.env["TTS_DATA_DIR"])

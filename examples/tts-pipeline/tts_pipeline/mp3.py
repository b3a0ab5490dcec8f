"""MP3 files as bytes: find the ID3 tags and the MPEG audio frames, measure the duration, and
merge the chunks of one story into one file.

An MP3 file is an optional ID3v2 tag (header), a run of MPEG audio frames, and an optional
128-byte ID3v1 trailer. Concatenating files as they are would put tags in the middle of the
audio, which players treat as garbage (a click, or a stop), so `merge` keeps the first chunk's
ID3v2 tag and nothing else but frames. It also drops each chunk's Xing/Info frame (written by
LAME and ffmpeg at the start of a file): it holds the frame count of that chunk alone, and a
player reading the merged file would take the first chunk's length for the whole file's.
Pure functions only: no I/O here.
"""

from __future__ import annotations

from dataclasses import dataclass

ID3V1_SIZE = 128

# Bitrates in kbit/s by [MPEG-1 or not][bitrate index], Layer III. Index 0 ("free") and 15 are
# refused.
_BITRATES = {
    True: (0, 32, 40, 48, 56, 64, 80, 96, 112, 128, 160, 192, 224, 256, 320),
    False: (0, 8, 16, 24, 32, 40, 48, 56, 64, 80, 96, 112, 128, 144, 160),
}
_SAMPLE_RATES = {3: (44100, 48000, 32000), 2: (22050, 24000, 16000), 0: (11025, 12000, 8000)}


class InvalidMP3(ValueError):
    """The bytes are not an MP3 file this module can read (Layer III, constant frame sync)."""


@dataclass(frozen=True)
class Frame:
    """One MPEG Layer III audio frame: where it starts in the file and what it holds."""

    offset: int
    length: int
    sample_rate: int
    samples: int
    mono: bool
    mpeg1: bool

    @property
    def seconds(self) -> float:
        return self.samples / self.sample_rate


def id3v2_size(data: bytes) -> int:
    """Length of the ID3v2 tag at the start of `data` (header, body and footer), or 0."""
    if len(data) < 10 or data[:3] != b"ID3":
        return 0
    body = 0
    for byte in data[6:10]:
        if byte & 0x80:
            raise InvalidMP3("ID3v2 tag with a malformed size")
        body = (body << 7) | byte
    footer = 10 if data[5] & 0x10 else 0
    return 10 + body + footer


def has_id3v1(data: bytes) -> bool:
    return len(data) >= ID3V1_SIZE and data[-ID3V1_SIZE : -ID3V1_SIZE + 3] == b"TAG"


def audio(data: bytes) -> bytes:
    """The audio frames of a file: without its ID3v2 tag and its ID3v1 trailer."""
    end = len(data) - ID3V1_SIZE if has_id3v1(data) else len(data)
    return data[id3v2_size(data) : end]


def parse_frame(data: bytes, offset: int) -> Frame:
    """The frame whose header starts at `offset`; InvalidMP3 if there is none."""
    if offset + 4 > len(data):
        raise InvalidMP3(f"truncated frame header at byte {offset}")
    b1, b2, b3 = data[offset + 1], data[offset + 2], data[offset + 3]
    if data[offset] != 0xFF or (b1 & 0xE0) != 0xE0:
        raise InvalidMP3(f"no frame sync at byte {offset}")
    version = (b1 >> 3) & 0b11  # 3: MPEG-1, 2: MPEG-2, 0: MPEG-2.5
    layer = (b1 >> 1) & 0b11  # 1: Layer III
    if version == 1 or layer != 1:
        raise InvalidMP3(f"frame at byte {offset} is not MPEG Layer III")
    bitrate_index, rate_index = b2 >> 4, (b2 >> 2) & 0b11
    if bitrate_index in (0, 15) or rate_index == 3:
        raise InvalidMP3(f"frame at byte {offset} has a bad bitrate or sample rate")
    mpeg1 = version == 3
    bitrate = _BITRATES[mpeg1][bitrate_index] * 1000
    sample_rate = _SAMPLE_RATES[version][rate_index]
    samples = 1152 if mpeg1 else 576
    length = samples // 8 * bitrate // sample_rate + ((b2 >> 1) & 1)
    if offset + length > len(data):
        raise InvalidMP3(
            f"frame at byte {offset} is cut short ({len(data) - offset} of {length} bytes)"
        )
    return Frame(offset, length, sample_rate, samples, mono=(b3 >> 6) == 0b11, mpeg1=mpeg1)


def frames(data: bytes) -> list[Frame]:
    """Every audio frame of a file, in order. Strict: anything between the tags that is not a
    run of frames (a tag in the middle, garbage, a truncated frame) raises InvalidMP3."""
    start = id3v2_size(data)
    end = len(data) - ID3V1_SIZE if has_id3v1(data) else len(data)
    body = data[:end]
    found: list[Frame] = []
    offset = start
    while offset < end:
        frame = parse_frame(body, offset)
        found.append(frame)
        offset += frame.length
    if not found:
        raise InvalidMP3("no audio frames")
    return found


def duration(data: bytes) -> float:
    """Seconds of audio in a file, summed over its frames."""
    return sum(frame.seconds for frame in frames(data))


def is_info_frame(data: bytes, frame: Frame) -> bool:
    """Whether the frame is a Xing/Info (or VBRI) header: a silent frame that describes the file."""
    side_info = (17 if frame.mono else 32) if frame.mpeg1 else (9 if frame.mono else 17)
    tag_at = frame.offset + 4 + side_info
    return (
        data[tag_at : tag_at + 4] in (b"Xing", b"Info")
        or data[frame.offset + 36 : frame.offset + 40] == b"VBRI"
    )


def merge(chunks: list[bytes]) -> bytes:
    """One MP3 file from the chunks of one story, in order: the first chunk's ID3v2 tag, then the
    audio frames of every chunk (no other tag, no Xing/Info frame). InvalidMP3 names a bad chunk."""
    if not chunks:
        raise InvalidMP3("nothing to merge")
    parts = [chunks[0][: id3v2_size(chunks[0])]]
    for number, chunk in enumerate(chunks, start=1):
        try:
            chunk_frames = frames(chunk)
        except InvalidMP3 as exc:
            raise InvalidMP3(f"chunk {number}: {exc}") from exc
        first = chunk_frames[0]
        start = first.offset + first.length if is_info_frame(chunk, first) else first.offset
        end = chunk_frames[-1].offset + chunk_frames[-1].length
        parts.append(chunk[start:end])
    return b"".join(parts)

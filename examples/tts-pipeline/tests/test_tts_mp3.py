"""Merging MP3 chunks gives one file a player reads: one ID3 tag, frames only,
the chunks' length."""

from __future__ import annotations

import pytest
from tts_pipeline import mp3
from tts_pipeline.speech.espeak import _id3v2_tag
from tts_testing import player_info, tagged, tone, with_info_frame


def test_merged_chunks_have_one_id3_tag_and_the_sum_of_their_durations() -> None:
    chunks = [tagged(tone(1.0, hz=330)), tagged(tone(2.0, hz=440)), tagged(tone(0.5, hz=550))]
    merged = mp3.merge(chunks)
    assert merged.startswith(chunks[0][: mp3.id3v2_size(chunks[0])])
    assert mp3.id3v2_size(merged) == mp3.id3v2_size(chunks[0])
    assert not mp3.has_id3v1(merged)
    assert merged.count(b"ID3") == 1 and merged.count(b"TAG") == 0
    assert mp3.duration(merged) == pytest.approx(sum(mp3.duration(c) for c in chunks), abs=1e-9)
    length, sample_rate = player_info(merged)  # an independent reader agrees
    assert length == pytest.approx(mp3.duration(merged), abs=0.05)
    assert sample_rate == 22050


def test_every_chunks_info_frame_is_dropped() -> None:
    chunks = [tagged(with_info_frame(tone(1.0))), tagged(with_info_frame(tone(1.0)))]
    merged = mp3.merge(chunks)
    frames = mp3.frames(merged)
    assert not any(mp3.is_info_frame(merged, f) for f in frames)
    assert len(frames) == sum(len(mp3.frames(c)) - 1 for c in chunks)


def test_a_tag_in_the_middle_of_the_frames_is_invalid() -> None:
    bad = tone(0.5) + _id3v2_tag("oops") + tone(0.5)
    with pytest.raises(mp3.InvalidMP3, match="no frame sync"):
        mp3.frames(bad)


def test_a_bad_chunk_is_named() -> None:
    with pytest.raises(mp3.InvalidMP3, match="chunk 2: no frame sync"):
        mp3.merge([tone(0.3), b"<html>rate limited</html>"])


def test_truncated_file_is_invalid() -> None:
    data = tone(0.5)
    with pytest.raises(mp3.InvalidMP3, match="cut short"):
        mp3.frames(data[:-10])


def test_nothing_to_merge() -> None:
    with pytest.raises(mp3.InvalidMP3, match="nothing to merge"):
        mp3.merge([])


def test_id3v2_size_counts_header_body_and_footer() -> None:
    tag = _id3v2_tag("x")
    assert mp3.id3v2_size(tag + b"\xff\xf3") == len(tag)
    with_footer = bytearray(tag)
    with_footer[5] |= 0x10
    assert mp3.id3v2_size(bytes(with_footer)) == len(tag) + 10
    assert mp3.id3v2_size(b"\xff\xf3\x40\xc4") == 0

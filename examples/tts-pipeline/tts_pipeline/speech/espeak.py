"""A local speech engine that needs no network: espeak-ng renders the text to WAV, LAME (through
lameenc) encodes it to MP3 frames. Robotic, but real speech in a real MP3, in well under a second
per chunk, so the whole pipeline runs on a laptop or in CI.

Each file gets a small ID3v2 tag naming the encoder and an ID3v1 trailer, as files from ffmpeg and
the LAME command line do, so the merge step meets the same tags it meets in production.
"""

from __future__ import annotations

import asyncio
import shutil
import tempfile
import wave
from pathlib import Path

import lameenc

from tts_pipeline.speech.base import VOICES, SpeechError

# OpenAI voice name -> espeak-ng voice (language + variant).
ESPEAK_VOICES = {
    "alloy": "en-us",
    "ash": "en-us+m3",
    "ballad": "en-gb+m2",
    "coral": "en-us+f2",
    "echo": "en-us+m1",
    "fable": "en-gb",
    "nova": "en-us+f3",
    "onyx": "en-us+m7",
    "sage": "en-gb+f4",
    "shimmer": "en-us+f4",
    "verse": "en-us+m4",
}


class EspeakSpeech:
    """Speech from espeak-ng, encoded to MP3 (mono, 48 kbit/s CBR at espeak's 22,050 Hz)."""

    name = "espeak"
    default_speed = 175
    bitrate_kbps = 48

    def __init__(
        self, *, words_per_minute: int = default_speed, executable: str = "espeak-ng"
    ) -> None:
        self.words_per_minute = words_per_minute
        self.executable = executable

    async def synthesize(self, text: str, voice: str) -> bytes:
        if voice not in VOICES:
            raise SpeechError(f"unknown voice {voice!r}; one of {', '.join(VOICES)}")
        if shutil.which(self.executable) is None:
            raise SpeechError(
                f"{self.executable} is not installed (apt-get install espeak-ng, brew install "
                "espeak-ng), or set OPENAI_API_KEY to use OpenAI"
            )
        with tempfile.TemporaryDirectory(prefix="tts-") as folder:
            wav = Path(folder) / "speech.wav"
            process = await asyncio.create_subprocess_exec(
                self.executable,
                "-v",
                ESPEAK_VOICES[voice],
                "-s",
                str(self.words_per_minute),
                "-w",
                str(wav),
                "--stdin",
                stdin=asyncio.subprocess.PIPE,
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.PIPE,
            )
            _, err = await process.communicate(text.encode())
            if process.returncode != 0 or not wav.exists():
                raise SpeechError(
                    f"espeak-ng failed ({process.returncode}): {err.decode(errors='replace')[:300]}"
                )
            # Encoding is CPU work: keep it off the event loop other attempts share.
            mp3 = await asyncio.to_thread(_encode, wav, self.bitrate_kbps)
        return (
            _id3v2_tag(f"espeak-ng {voice} / LAME {self.bitrate_kbps} kbps")
            + mp3
            + _id3v1_trailer()
        )


def _encode(wav_path: Path, bitrate_kbps: int) -> bytes:
    with wave.open(str(wav_path)) as wav:
        if wav.getsampwidth() != 2:
            raise SpeechError(
                f"espeak-ng wrote {8 * wav.getsampwidth()}-bit audio; 16-bit expected"
            )
        pcm = wav.readframes(wav.getnframes())
        encoder = lameenc.Encoder()
        encoder.set_bit_rate(bitrate_kbps)
        encoder.set_in_sample_rate(wav.getframerate())
        encoder.set_channels(wav.getnchannels())
        encoder.set_quality(7)  # fast; speech at 48 kbit/s gains nothing from the slow modes
    return bytes(encoder.encode(pcm) + encoder.flush())


def _id3v2_tag(encoder: str) -> bytes:
    """An ID3v2.3 tag with one TSSE (encoder settings) frame."""
    text = b"\x00" + encoder.encode("latin-1", errors="replace")  # 0: ISO-8859-1
    frame = b"TSSE" + len(text).to_bytes(4, "big") + b"\x00\x00" + text
    size = len(frame)
    syncsafe = bytes([(size >> 21) & 0x7F, (size >> 14) & 0x7F, (size >> 7) & 0x7F, size & 0x7F])
    return b"ID3\x03\x00\x00" + syncsafe + frame


def _id3v1_trailer() -> bytes:
    # the last byte is the genre: 255, none
    return b"TAG" + b"Conveyor TTS example".ljust(30, b"\x00") + b"\x00" * 94 + b"\xff"

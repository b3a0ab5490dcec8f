"""Speech providers: espeak-ng makes real MP3s offline; OpenAI's API is called as documented and
its errors say whether a retry can help; the provider follows the environment."""

from __future__ import annotations

import asyncio
import json
import shutil
from collections.abc import Callable

import httpx
import pytest
from tts_pipeline import faults, mp3
from tts_pipeline.speech import EspeakSpeech, OpenAISpeech, SpeechError, provider_from_env
from tts_testing import player_info

needs_espeak = pytest.mark.skipif(
    shutil.which("espeak-ng") is None, reason="espeak-ng is not installed"
)


@needs_espeak
def test_espeak_speaks_a_tagged_mp3_of_plausible_length() -> None:
    audio = asyncio.run(
        EspeakSpeech().synthesize("The lighthouse keeper counted the ships. " * 5, "nova")
    )
    assert audio.startswith(b"ID3") and mp3.has_id3v1(audio)
    seconds = mp3.duration(audio)
    assert 8 < seconds < 40  # 30 words at 175 words a minute, with pauses
    assert player_info(audio)[0] == pytest.approx(seconds, abs=0.1)


@needs_espeak
def test_espeak_refuses_an_unknown_voice() -> None:
    with pytest.raises(SpeechError, match="unknown voice 'robot'") as caught:
        asyncio.run(EspeakSpeech().synthesize("hello", "robot"))
    assert not caught.value.retryable


def test_missing_espeak_is_a_clear_error_that_a_retry_cannot_fix() -> None:
    with pytest.raises(SpeechError, match="not installed") as caught:
        asyncio.run(EspeakSpeech(executable="espeak-ng-missing").synthesize("hello", "alloy"))
    assert not caught.value.retryable


def openai_with(handler: Callable[[httpx.Request], httpx.Response]) -> OpenAISpeech:
    return OpenAISpeech(api_key="sk-test", transport=httpx.MockTransport(handler))


def test_openai_posts_the_chunk_and_returns_the_mp3() -> None:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(
            200, content=b"ID3...mp3 bytes", headers={"content-type": "audio/mpeg"}
        )

    assert (
        asyncio.run(openai_with(handler).synthesize("Hello there.", "coral")) == b"ID3...mp3 bytes"
    )
    request = seen[0]
    assert request.method == "POST" and str(request.url) == "https://api.openai.com/v1/audio/speech"
    assert request.headers["authorization"] == "Bearer sk-test"
    assert json.loads(request.content) == {
        "model": "gpt-4o-mini-tts",
        "input": "Hello there.",
        "voice": "coral",
        "response_format": "mp3",
    }


@pytest.mark.parametrize(
    ("status", "retryable"), [(429, True), (500, True), (503, True), (400, False), (401, False)]
)
def test_openai_errors_say_whether_a_retry_can_help(status: int, retryable: bool) -> None:
    provider = openai_with(lambda r: httpx.Response(status, json={"error": {"message": "nope"}}))
    with pytest.raises(SpeechError, match=f"answered {status}: nope") as caught:
        asyncio.run(provider.synthesize("Hello.", "alloy"))
    assert caught.value.retryable is retryable


def test_openai_network_errors_are_retryable() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("connection refused", request=request)

    with pytest.raises(SpeechError) as caught:
        asyncio.run(openai_with(handler).synthesize("Hello.", "alloy"))
    assert caught.value.retryable


def test_provider_is_openai_with_a_key_and_espeak_without() -> None:
    assert isinstance(provider_from_env({"OPENAI_API_KEY": "sk-1"}), OpenAISpeech)
    assert isinstance(provider_from_env({}), EspeakSpeech)
    assert isinstance(
        provider_from_env({"OPENAI_API_KEY": "sk-1", "TTS_PROVIDER": "espeak"}), EspeakSpeech
    )
    assert provider_from_env({"TTS_ESPEAK_SPEED": "300"}).words_per_minute == 300  # type: ignore[attr-defined]
    with pytest.raises(SpeechError, match="needs OPENAI_API_KEY"):
        provider_from_env({"TTS_PROVIDER": "openai"})
    with pytest.raises(SpeechError, match="openai or espeak"):
        provider_from_env({"TTS_PROVIDER": "polly"})


def test_fault_markers_only_work_when_enabled() -> None:
    text = "Once upon a time. [[fail-attempts:2]] The end."
    assert faults.apply(text, 1, {}) == text
    on = {"TTS_TEST_FAULTS": "1"}
    for attempt in (1, 2):
        with pytest.raises(faults.InjectedFault, match=f"attempt {attempt}"):
            faults.apply(text, attempt, on)
    assert faults.apply(text, 3, on) == "Once upon a time. The end."
    with pytest.raises(faults.InjectedFault):
        faults.apply("[[fail-attempts:always]]", 99, on)

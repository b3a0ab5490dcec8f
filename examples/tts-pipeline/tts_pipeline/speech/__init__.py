"""Text-to-speech providers behind one interface, `SpeechProvider`: OpenAI's speech API, and
espeak-ng on this machine for work without internet or API keys. `provider_from_env()` picks one."""

from __future__ import annotations

import os

from tts_pipeline.speech.base import VOICES, SpeechError, SpeechProvider
from tts_pipeline.speech.espeak import EspeakSpeech
from tts_pipeline.speech.openai import OpenAISpeech

__all__ = [
    "VOICES",
    "EspeakSpeech",
    "OpenAISpeech",
    "SpeechError",
    "SpeechProvider",
    "provider_from_env",
]


def provider_from_env(env: os._Environ[str] | dict[str, str] | None = None) -> SpeechProvider:
    """OpenAI when OPENAI_API_KEY is set, else espeak-ng; TTS_PROVIDER=openai|espeak forces one."""
    env = os.environ if env is None else env
    choice = env.get("TTS_PROVIDER", "").strip().lower()
    if choice not in ("", "openai", "espeak"):
        raise SpeechError(f"TTS_PROVIDER must be openai or espeak, not {choice!r}")
    if choice == "openai" or (not choice and env.get("OPENAI_API_KEY")):
        key = env.get("OPENAI_API_KEY")
        if not key:
            raise SpeechError("TTS_PROVIDER=openai needs OPENAI_API_KEY")
        return OpenAISpeech(
            api_key=key,
            model=env.get("OPENAI_TTS_MODEL", OpenAISpeech.default_model),
            base_url=env.get("OPENAI_BASE_URL", OpenAISpeech.default_base_url),
        )
    return EspeakSpeech(
        words_per_minute=int(env.get("TTS_ESPEAK_SPEED", EspeakSpeech.default_speed))
    )

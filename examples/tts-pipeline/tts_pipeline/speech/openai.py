"""OpenAI's speech API (`POST /v1/audio/speech`) over httpx: one request per chunk, MP3 back."""

from __future__ import annotations

import httpx

from tts_pipeline.speech.base import VOICES, SpeechError


class OpenAISpeech:
    """Speech from OpenAI. A 429 or 5xx or a network error is retryable; any other error is not."""

    name = "openai"
    default_model = "gpt-4o-mini-tts"
    default_base_url = "https://api.openai.com/v1"

    def __init__(
        self,
        *,
        api_key: str,
        model: str = default_model,
        base_url: str = default_base_url,
        timeout: float = 90,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self.api_key = api_key
        self.model = model
        self.base_url = base_url.rstrip("/")
        self.timeout = timeout
        self.transport = transport  # tests pass an httpx.MockTransport

    async def synthesize(self, text: str, voice: str) -> bytes:
        if voice not in VOICES:
            raise SpeechError(f"unknown voice {voice!r}; one of {', '.join(VOICES)}")
        body = {"model": self.model, "input": text, "voice": voice, "response_format": "mp3"}
        async with httpx.AsyncClient(timeout=self.timeout, transport=self.transport) as client:
            try:
                response = await client.post(
                    f"{self.base_url}/audio/speech",
                    json=body,
                    headers={"Authorization": f"Bearer {self.api_key}"},
                )
            except httpx.HTTPError as exc:
                raise SpeechError(f"OpenAI speech request failed: {exc!r}", retryable=True) from exc
        if response.status_code != 200:
            retryable = response.status_code == 429 or response.status_code >= 500
            raise SpeechError(
                f"OpenAI speech API answered {response.status_code}: {_message(response)}",
                retryable=retryable,
            )
        return response.content


def _message(response: httpx.Response) -> str:
    try:
        return str(response.json()["error"]["message"])
    except (ValueError, KeyError, TypeError):
        return response.text[:300]

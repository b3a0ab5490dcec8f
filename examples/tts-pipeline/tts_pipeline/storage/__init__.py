"""Object storage behind one interface, `ObjectStorage`: a local folder (the default) or any
S3-compatible service through boto3 (AWS S3, Cloudflare R2, MinIO: set the endpoint URL).
`storage_from_env()` picks one."""

from __future__ import annotations

import os

from tts_pipeline.storage.base import ObjectStorage, StorageError, check_key
from tts_pipeline.storage.local import LocalStorage
from tts_pipeline.storage.s3 import S3Storage

__all__ = [
    "LocalStorage",
    "ObjectStorage",
    "S3Storage",
    "StorageError",
    "check_key",
    "storage_from_env",
]


def storage_from_env(env: os._Environ[str] | dict[str, str] | None = None) -> ObjectStorage:
    """S3 when TTS_S3_BUCKET is set (TTS_S3_ENDPOINT_URL for R2 or MinIO, credentials the usual
    AWS_* way), else the folder TTS_STORAGE_DIR (default: data/storage in the example)."""
    from tts_pipeline.settings import data_dir

    env = os.environ if env is None else env
    bucket = env.get("TTS_S3_BUCKET")
    if bucket:
        return S3Storage(
            bucket=bucket,
            endpoint_url=env.get("TTS_S3_ENDPOINT_URL") or None,
            region=env.get("TTS_S3_REGION") or None,
            public_base_url=env.get("TTS_PUBLIC_BASE_URL") or None,
        )
    folder = env.get("TTS_STORAGE_DIR") or str(data_dir(env) / "storage")
    return LocalStorage(
        folder, public_base_url=env.get("TTS_PUBLIC_BASE_URL", "http://127.0.0.1:8000/media")
    )

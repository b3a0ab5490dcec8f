"""Object storage keeps bytes under keys the same way on a local folder and on S3 (moto here)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import boto3
import pytest
from moto import mock_aws
from tts_pipeline import mp3
from tts_pipeline.audio_files import assemble, chunk_key, remove_chunks
from tts_pipeline.storage import (
    LocalStorage,
    ObjectStorage,
    S3Storage,
    StorageError,
    storage_from_env,
)
from tts_testing import tagged_tone


@pytest.fixture(params=["local", "s3"])
def storage(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[ObjectStorage]:
    if request.param == "local":
        yield LocalStorage(tmp_path / "storage", public_base_url="http://media.test/media")
        return
    with mock_aws():
        client = boto3.client(
            "s3", region_name="us-east-1", aws_access_key_id="test", aws_secret_access_key="test"
        )
        client.create_bucket(Bucket="audio")
        yield S3Storage(bucket="audio", client=client)


def test_put_get_list_delete(storage: ObjectStorage) -> None:
    storage.put("tmp/job_1/chunk-0000.mp3", b"zero", "audio/mpeg")
    storage.put("tmp/job_1/chunk-0001.mp3", b"one", "audio/mpeg")
    storage.put("audio/job_1.mp3", b"final", "audio/mpeg")
    assert storage.get("tmp/job_1/chunk-0001.mp3") == b"one"
    assert storage.list("tmp/job_1/") == ["tmp/job_1/chunk-0000.mp3", "tmp/job_1/chunk-0001.mp3"]
    storage.delete(
        ["tmp/job_1/chunk-0000.mp3", "tmp/job_1/chunk-0001.mp3", "tmp/job_1/never-there.mp3"]
    )
    assert storage.list("tmp/") == []
    assert storage.list("") == ["audio/job_1.mp3"]
    with pytest.raises(StorageError):
        storage.get("tmp/job_1/chunk-0000.mp3")


def test_an_overwrite_replaces_the_object(storage: ObjectStorage) -> None:
    storage.put("audio/a.mp3", b"first")
    storage.put("audio/a.mp3", b"second")
    assert storage.get("audio/a.mp3") == b"second"


@pytest.mark.parametrize(
    "key", ["../etc/passwd", "/abs.mp3", "a/../b.mp3", "a//b.mp3", "a b.mp3", ""]
)
def test_unsafe_keys_are_refused(storage: ObjectStorage, key: str) -> None:
    with pytest.raises(StorageError, match="bad storage key"):
        storage.put(key, b"x")


def test_urls() -> None:
    assert (
        LocalStorage("/tmp/x", public_base_url="http://h/media/").url("audio/a.mp3")
        == "http://h/media/audio/a.mp3"
    )
    with mock_aws():
        client = boto3.client(
            "s3", region_name="us-east-1", aws_access_key_id="t", aws_secret_access_key="t"
        )
        assert (
            S3Storage(bucket="b", client=client, public_base_url="https://pub.r2.dev").url(
                "audio/a.mp3"
            )
            == "https://pub.r2.dev/audio/a.mp3"
        )
        presigned = S3Storage(bucket="b", client=client).url("audio/a.mp3")
        assert "audio/a.mp3" in presigned and "Signature" in presigned


def test_storage_follows_the_environment(tmp_path: Path) -> None:
    local = storage_from_env({"TTS_DATA_DIR": str(tmp_path)})
    assert isinstance(local, LocalStorage) and local.root == tmp_path / "storage"
    s3 = storage_from_env(
        {
            "TTS_S3_BUCKET": "audio",
            "TTS_S3_ENDPOINT_URL": "http://127.0.0.1:9000",
            "TTS_S3_REGION": "auto",
            "AWS_ACCESS_KEY_ID": "k",
            "AWS_SECRET_ACCESS_KEY": "s",
        }
    )
    assert isinstance(s3, S3Storage) and s3.client.meta.endpoint_url == "http://127.0.0.1:9000"


def test_assemble_uploads_the_merged_file_and_remove_chunks_cleans_up(
    storage: ObjectStorage,
) -> None:
    keys = [chunk_key("job_9", i) for i in range(3)]
    chunks = [tagged_tone(0.4 + i * 0.1) for i in range(3)]
    for key, chunk in zip(keys, chunks, strict=True):
        storage.put(key, chunk)
    audio = assemble(storage, "job_9", keys)
    assert audio["key"] == "audio/job_9.mp3" and audio["bytes"] == len(
        storage.get("audio/job_9.mp3")
    )
    assert audio["seconds"] == pytest.approx(sum(mp3.duration(c) for c in chunks), abs=0.001)
    assert remove_chunks(storage, "job_9") == 3
    assert storage.list("tmp/") == [] and storage.list("audio/") == ["audio/job_9.mp3"]

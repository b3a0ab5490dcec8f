"""Object storage on S3 or an S3-compatible service, through boto3. R2 and MinIO are S3 with
another endpoint URL (`https://<account>.r2.cloudflarestorage.com`, `http://minio:9000`)."""

from __future__ import annotations

from typing import Any

import boto3
from botocore.exceptions import BotoCoreError, ClientError

from tts_pipeline.storage.base import StorageError, check_key


class S3Storage:
    """`url()` is `public_base_url/key` when the bucket is public (an R2 public bucket, a CDN),
    else a presigned GET URL valid for `url_expires` seconds."""

    name = "s3"

    def __init__(
        self,
        *,
        bucket: str,
        endpoint_url: str | None = None,
        region: str | None = None,
        public_base_url: str | None = None,
        url_expires: int = 7 * 24 * 3600,
        client: Any = None,
    ) -> None:
        self.bucket = bucket
        self.public_base_url = public_base_url.rstrip("/") if public_base_url else None
        self.url_expires = url_expires
        self.client = client or boto3.client("s3", endpoint_url=endpoint_url, region_name=region)

    def put(self, key: str, data: bytes, content_type: str = "application/octet-stream") -> None:
        try:
            self.client.put_object(
                Bucket=self.bucket, Key=check_key(key), Body=data, ContentType=content_type
            )
        except (BotoCoreError, ClientError) as exc:
            raise StorageError(f"cannot upload {key!r} to bucket {self.bucket}: {exc}") from exc

    def get(self, key: str) -> bytes:
        try:
            body = self.client.get_object(Bucket=self.bucket, Key=check_key(key))["Body"]
            return bytes(body.read())
        except (BotoCoreError, ClientError) as exc:
            raise StorageError(f"cannot download {key!r} from bucket {self.bucket}: {exc}") from exc

    def delete(self, keys: list[str]) -> None:
        for start in range(0, len(keys), 1000):  # DeleteObjects takes at most 1,000 keys
            batch = [{"Key": check_key(k)} for k in keys[start : start + 1000]]
            try:
                answer = self.client.delete_objects(
                    Bucket=self.bucket, Delete={"Objects": batch, "Quiet": True}
                )
            except (BotoCoreError, ClientError) as exc:
                raise StorageError(f"cannot delete from bucket {self.bucket}: {exc}") from exc
            if answer.get("Errors"):
                raise StorageError(
                    f"cannot delete from bucket {self.bucket}: {answer['Errors'][:3]}"
                )

    def list(self, prefix: str) -> list[str]:
        keys: list[str] = []
        try:
            for page in self.client.get_paginator("list_objects_v2").paginate(
                Bucket=self.bucket, Prefix=prefix
            ):
                keys.extend(item["Key"] for item in page.get("Contents", []))
        except (BotoCoreError, ClientError) as exc:
            raise StorageError(f"cannot list bucket {self.bucket}: {exc}") from exc
        return sorted(keys)

    def url(self, key: str) -> str:
        if self.public_base_url:
            return f"{self.public_base_url}/{check_key(key)}"
        return str(
            self.client.generate_presigned_url(
                "get_object",
                Params={"Bucket": self.bucket, "Key": check_key(key)},
                ExpiresIn=self.url_expires,
            )
        )

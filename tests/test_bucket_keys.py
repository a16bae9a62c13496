"""Bucket keys (coffer/server/encryption.py ``new_document`` / ``data_key_of``): SSE-S3 objects, and
SSE-KMS ones asking for a bucket key, derive their data keys from a key the key service makes per
bucket at most once a second, as S3 Bucket Keys do; every object still has its own data key."""

from __future__ import annotations

import base64
import os
import time
from pathlib import Path

import pytest

from coffer.encryption import frames
from coffer.encryption.kms import LocalKeyService, inspect_wrapped
from coffer.server import encryption, sse
from coffer.server.errors import S3Error

SSE_S3 = sse.SseRequest(algorithm=sse.AES256)


@pytest.fixture
def keys(tmp_path: Path) -> LocalKeyService:
    return LocalKeyService(tmp_path / "kms", os.urandom(32))


class Counting:
    """The key service, counting the data keys it makes."""

    def __init__(self, keys: LocalKeyService) -> None:
        self.keys, self.made = keys, 0
        real = keys.generate_data_key

        def generate(*args, **kwargs):  # type: ignore[no-untyped-def]
            self.made += 1
            return real(*args, **kwargs)

        keys.generate_data_key = generate  # type: ignore[method-assign]

    def __call__(self) -> LocalKeyService:
        return self.keys


def test_sse_s3_objects_of_a_bucket_share_a_wrapped_key_not_a_data_key(keys: LocalKeyService) -> None:
    service = Counting(keys)
    made = [encryption.new_document(service, SSE_S3, "b", f"k{i}") for i in range(20)]
    assert service.made == 1  # one key-service call for the bucket, not one per object
    docs = [doc for doc, _ in made]
    assert len({doc["w"] for doc in docs}) == 1
    assert len({data_key for _, data_key in made}) == 20  # yet a data key per object
    for (doc, data_key), i in zip(made, range(20), strict=True):
        assert doc["d"] == encryption.DERIVED and doc["c"] == {"aws:s3:arn": "arn:aws:s3:::b"}
        assert encryption.data_key_of(service, doc, None, "b", f"k{i}") == data_key
    other, _ = encryption.new_document(service, SSE_S3, "other", "k0")
    assert service.made == 2 and other["w"] != docs[0]["w"]


def test_a_document_moved_to_another_object_opens_nothing(keys: LocalKeyService) -> None:
    doc, data_key = encryption.new_document(lambda: keys, SSE_S3, "b", "k")
    object_id = encryption.body_id(doc)
    stored = frames.seal_whole(data_key, object_id, b"secret", frames.DEFAULT_FRAME_SIZE)
    # Read first (so its key is kept for a second): the kept key is the object's alone.
    assert encryption.data_key_of(lambda: keys, doc, None, "b", "k") == data_key
    for bucket, key in (("b", "k2"), ("b2", "k")):
        moved = encryption.data_key_of(lambda: keys, doc, None, bucket, key)
        with pytest.raises(frames.FrameError):
            frames.open_whole(moved, object_id, stored, 6, frames.DEFAULT_FRAME_SIZE)
    opened = encryption.data_key_of(lambda: keys, doc, None, "b", "k")
    assert frames.open_whole(opened, object_id, stored, 6, frames.DEFAULT_FRAME_SIZE) == b"secret"


def test_a_rotated_or_disabled_key_takes_effect_within_a_second(keys: LocalKeyService) -> None:
    app = keys.create_key(alias="bk")
    request = sse.SseRequest(algorithm=sse.KMS, kms_key_id="alias/bk", bucket_key=True)
    first, _ = encryption.new_document(lambda: keys, request, "rot", "a")
    assert first["d"] == encryption.DERIVED and first["b"] is True and first["k"] == app.arn
    keys.rotate(app.key_id)
    time.sleep(1.05)
    second, _ = encryption.new_document(lambda: keys, request, "rot", "b")
    version = inspect_wrapped(base64.b64decode(second["w"])).key_version
    assert version == inspect_wrapped(base64.b64decode(first["w"])).key_version + 1
    keys.disable_key(app.key_id)
    time.sleep(1.05)
    with pytest.raises(S3Error) as refused:
        encryption.new_document(lambda: keys, request, "rot", "c")
    assert refused.value.code == "KMS.DisabledException"


def test_kms_without_a_bucket_key_or_with_a_context_wraps_each_data_key(keys: LocalKeyService) -> None:
    keys.create_key(alias="app")
    for request in (
        sse.SseRequest(algorithm=sse.KMS, kms_key_id="alias/app"),
        sse.SseRequest(algorithm=sse.KMS, kms_key_id="alias/app", bucket_key=True, context={"team": "a"}),
    ):
        doc, data_key = encryption.new_document(lambda: keys, request, "b", "k")
        assert "d" not in doc
        assert doc["c"]["aws:s3:arn"] == "arn:aws:s3:::b/k"
        assert encryption.data_key_of(lambda: keys, doc, None, "b", "k") == data_key


def test_documents_without_a_bucket_key_stay_readable(keys: LocalKeyService) -> None:
    """Objects written before bucket keys: "w" wraps the data key itself, under the object's ARN."""
    made = keys.generate_data_key(None, {"aws:s3:arn": "arn:aws:s3:::b/k"})
    doc = {
        "v": 1,
        "f": frames.DEFAULT_FRAME_SIZE,
        "i": base64.b64encode(os.urandom(16)).decode(),
        "a": sse.AES256,
        "w": base64.b64encode(made.wrapped).decode(),
        "c": {"aws:s3:arn": "arn:aws:s3:::b/k"},
    }
    assert encryption.data_key_of(lambda: keys, doc, None, "b", "k") == made.plaintext


def test_reads_within_a_second_ask_the_key_service_once(keys: LocalKeyService) -> None:
    service = Counting(keys)
    docs = [encryption.new_document(service, SSE_S3, "hot", f"k{i}") for i in range(3)]
    asked: list[bytes] = []
    real = keys.decrypt_data_key

    def decrypt(wrapped, context):  # type: ignore[no-untyped-def]
        asked.append(wrapped)
        return real(wrapped, context)

    keys.decrypt_data_key = decrypt  # type: ignore[method-assign]
    for _ in range(3):
        for i, (doc, data_key) in enumerate(docs):
            assert encryption.data_key_of(service, doc, None, "hot", f"k{i}") == data_key
    assert len(asked) <= 1  # the shared bucket key, unwrapped once (or kept from the writes)

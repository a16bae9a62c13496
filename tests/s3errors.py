"""Asserting on the S3 error a boto3 call ended with."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from botocore.exceptions import ClientError


def s3_error(call: Callable[..., Any], *args: Any, **kwargs: Any) -> tuple[int, str, dict[str, Any]]:
    """Run a boto3 call that must fail; returns (HTTP status, error code, parsed error)."""
    with pytest.raises(ClientError) as info:
        call(*args, **kwargs)
    response = info.value.response
    error = response.get("Error", {})
    status = response["ResponseMetadata"]["HTTPStatusCode"]
    # Every answer carries a request id, errors included.
    assert response["ResponseMetadata"]["HTTPHeaders"].get("x-amz-request-id")
    return status, error.get("Code", ""), error


def expect_error(status: int, code: str, call: Callable[..., Any], *args: Any, **kwargs: Any) -> dict[str, Any]:
    got_status, got_code, error = s3_error(call, *args, **kwargs)
    assert (got_status, got_code) == (status, code), error
    return error

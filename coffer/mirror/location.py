"""Where each side of a mirror is: ``s3://bucket/prefix``, its endpoint, region and credentials."""

from __future__ import annotations

import configparser
import os
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

DEFAULT_REGION = "us-east-1"


class LocationError(ValueError):
    """A location or credential the user gave cannot be used; the message says why."""


@dataclass(frozen=True)
class Credentials:
    access_key: str
    secret_key: str
    session_token: str = ""


@dataclass(frozen=True)
class Location:
    """One side: the bucket and key prefix, the endpoint URL, the signing region and credentials
    (``None``: requests go unsigned, as for a public bucket)."""

    bucket: str
    prefix: str
    endpoint: str
    region: str
    credentials: Credentials | None

    def url(self) -> str:
        return f"s3://{self.bucket}/{self.prefix}"


def parse_s3_url(text: str) -> tuple[str, str]:
    """``s3://bucket/prefix`` -> (bucket, prefix); the prefix may be empty and is kept as written
    (``s3://b/logs`` also matches ``logs-2024/…``, as in ``aws s3``)."""
    parts = urlsplit(text)
    if parts.scheme != "s3" or not parts.netloc:
        raise LocationError(f"{text!r} is not an s3://bucket[/prefix] URL")
    if parts.query or parts.fragment:
        # urlsplit would drop '?' and '#' from a key prefix: take everything after the bucket.
        rest = text[len("s3://") + len(parts.netloc) :]
        return parts.netloc, rest.removeprefix("/")
    return parts.netloc, parts.path.removeprefix("/")


def resolve_credentials(
    access_key: str | None, secret_key: str | None, session_token: str | None, profile: str | None
) -> Credentials | None:
    """The first of: explicit keys, the named profile, AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY,
    AWS_PROFILE's profile, the ``default`` profile; ``None`` (unsigned) when there is none."""
    if access_key or secret_key:
        if not (access_key and secret_key):
            raise LocationError("an access key and a secret key must be given together")
        return Credentials(access_key, secret_key, session_token or "")
    if profile:
        found = _profile_credentials(profile)
        if found is None:
            raise LocationError(f"profile {profile!r} not found (or without keys) in {_credentials_file()}")
        return found
    env_key, env_secret = os.environ.get("AWS_ACCESS_KEY_ID"), os.environ.get("AWS_SECRET_ACCESS_KEY")
    if env_key and env_secret:
        return Credentials(env_key, env_secret, os.environ.get("AWS_SESSION_TOKEN", ""))
    return _profile_credentials(os.environ.get("AWS_PROFILE") or "default")


def _credentials_file() -> Path:
    return Path(os.environ.get("AWS_SHARED_CREDENTIALS_FILE") or Path.home() / ".aws" / "credentials")


def _profile_credentials(profile: str) -> Credentials | None:
    """Static keys of a profile in the shared credentials file (the format the AWS CLI writes)."""
    parser = configparser.RawConfigParser()
    try:
        parser.read(_credentials_file(), encoding="utf-8")
    except (OSError, configparser.Error):
        return None
    if not parser.has_section(profile):
        return None
    section = parser[profile]
    key, secret = section.get("aws_access_key_id"), section.get("aws_secret_access_key")
    if not (key and secret):
        return None
    return Credentials(key, secret, section.get("aws_session_token", ""))


def default_region() -> str:
    return os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION") or DEFAULT_REGION


def endpoint_url(endpoint: str | None, region: str) -> str:
    """The endpoint given (``http(s)://host[:port]``), or AWS's regional S3 endpoint."""
    if not endpoint:
        return f"https://s3.{region}.amazonaws.com"
    parts = urlsplit(endpoint)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise LocationError(f"endpoint {endpoint!r} is not an http(s)://host[:port] URL")
    if parts.path not in ("", "/") or parts.query:
        raise LocationError(f"endpoint {endpoint!r} must not have a path (the bucket goes in the s3:// URL)")
    return f"{parts.scheme}://{parts.netloc}"


def make_location(
    url: str,
    endpoint: str | None,
    region: str | None,
    access_key: str | None,
    secret_key: str | None,
    session_token: str | None,
    profile: str | None,
) -> Location:
    bucket, prefix = parse_s3_url(url)
    region = region or default_region()
    creds = resolve_credentials(access_key, secret_key, session_token, profile)
    return Location(bucket, prefix, endpoint_url(endpoint, region), region, creds)

"""Authentication and authorization: SigV4/SigV2 (header, presigned), streaming chunk
signatures, POST policies, users and key pairs, rate limits. See docs/security.md."""

from coffer.server.auth.principal import ANONYMOUS, DEFAULT_OWNER, Principal

__all__ = ["ANONYMOUS", "DEFAULT_OWNER", "Principal"]

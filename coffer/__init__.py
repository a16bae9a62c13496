"""Coffer: an S3-compatible object storage server."""

__version__ = "0.1.0"

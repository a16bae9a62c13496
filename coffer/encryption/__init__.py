"""Server-side encryption, below HTTP: the framed AES-256-GCM body format (frames.py) and the
key service that makes and wraps data keys (kms.py). docs/encryption.md describes both."""

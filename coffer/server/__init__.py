"""The HTTP side: ASGI app, request classification, S3 handlers. No files, no SQL."""

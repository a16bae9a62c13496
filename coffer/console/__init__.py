"""The web console at /_coffer/console/ (docs/console.md): sign-in, buckets, objects, keys, metrics."""

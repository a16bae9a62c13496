"""S3 event notifications: bucket rules, AWS event records, a durable on-disk queue, webhook delivery
and the live event stream (docs/notifications.md). Nothing here knows about HTTP requests: the
server's handlers call ``Notifier.emit`` (through coffer/server/notify.py) after a write commits."""

"""S3 Select (SelectObjectContent): the request, the SQL dialect, the readers of CSV/JSON/Parquet
objects, the query engines and the event-stream encoding of the answer. Nothing here knows HTTP;
coffer/server/handlers/select.py joins it to a request (docs/select.md)."""

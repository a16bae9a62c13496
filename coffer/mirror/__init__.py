"""``coffer mirror``: copy, sync and verify objects between two S3 endpoints (docs/mirror.md).

A client tool: it speaks S3 to both sides over HTTP (client.py) and knows nothing of Coffer's
server or storage internals beyond the SigV4 helpers it signs with.

- location.py: ``s3://bucket/prefix`` plus each side's endpoint, region and credentials;
- client.py: a lean signed S3 client on http.client (one keep-alive connection per thread);
- plan.py: the merge of the two sorted listings into copy / skip / delete decisions;
- transfer.py: one object copied (single PUT, or multipart with bounded part buffers);
- progress.py: the progress line, the summary and the JSON report;
- runner.py: the worker pool that drives copy, sync and verify.
"""

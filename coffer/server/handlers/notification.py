"""GetBucketNotificationConfiguration and PutBucketNotificationConfiguration (docs/notifications.md).

The rules are the bucket's ``notification`` configuration document; a bucket without one answers an
empty NotificationConfiguration, as S3 does, and an empty one written removes them.
"""

from __future__ import annotations

from coffer.events.rules import CONFIG_NAME, Rules
from coffer.events.targets import parse_targets
from coffer.server import notification
from coffer.server.context import Context
from coffer.server.handlers.common import xml_response
from coffer.server.http import Response
from coffer.server.request import Request
from coffer.server.upload import plan_upload
from coffer.server.xml import MAX_XML_BODY


async def GetBucketNotificationConfiguration(ctx: Context, req: Request) -> Response:
    assert req.bucket is not None
    await ctx.engine.get_bucket(req.bucket)  # NoSuchBucket first, as S3 does
    rules = Rules.from_doc(await ctx.engine.get_bucket_config(req.bucket, CONFIG_NAME))
    return xml_response(notification.render(rules))


async def PutBucketNotificationConfiguration(ctx: Context, req: Request) -> Response:
    assert req.bucket is not None
    await ctx.engine.get_bucket(req.bucket)  # NoSuchBucket before reading a body
    plan = plan_upload(req, default_algorithm=None)  # Content-MD5 / x-amz-checksum-* are checked
    targets = set(parse_targets(ctx.settings.notification_targets))
    rules = notification.parse(await plan.read_all(MAX_XML_BODY), targets)
    await ctx.engine.put_bucket_config(req.bucket, CONFIG_NAME, rules.to_doc() if rules is not None else None)
    ctx.bucket_states().forget(req.bucket)  # this process's next write matches the new rules at once
    return Response(200)

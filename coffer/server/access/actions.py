"""The S3 actions a policy may name, with the kind of resource each applies to.

A policy's Action patterns are checked against this list when it is stored: a pattern that
names no known action is "Policy has invalid action", and a statement whose actions cannot
apply to any of its resources is "Action does not apply to any resource(s) in statement".
"""

from __future__ import annotations

from typing import Literal

Kind = Literal["service", "bucket", "object"]

_SERVICE = """
ListAllMyBuckets GetAccountPublicAccessBlock PutAccountPublicAccessBlock ListAccessPoints
ListJobs CreateJob ListStorageLensConfigurations ListMultiRegionAccessPoints
"""

_BUCKET = """
CreateBucket DeleteBucket ListBucket ListBucketVersions ListBucketMultipartUploads
GetBucketLocation GetBucketVersioning PutBucketVersioning GetBucketAcl PutBucketAcl
GetBucketPolicy PutBucketPolicy DeleteBucketPolicy GetBucketPolicyStatus
GetBucketCORS PutBucketCORS GetLifecycleConfiguration PutLifecycleConfiguration
GetBucketTagging PutBucketTagging GetEncryptionConfiguration PutEncryptionConfiguration
GetBucketObjectLockConfiguration PutBucketObjectLockConfiguration
GetBucketNotification PutBucketNotification GetBucketLogging PutBucketLogging
GetBucketWebsite PutBucketWebsite DeleteBucketWebsite
GetReplicationConfiguration PutReplicationConfiguration
GetAccelerateConfiguration PutAccelerateConfiguration
GetBucketRequestPayment PutBucketRequestPayment
GetBucketOwnershipControls PutBucketOwnershipControls
GetBucketPublicAccessBlock PutBucketPublicAccessBlock
GetAnalyticsConfiguration PutAnalyticsConfiguration
GetMetricsConfiguration PutMetricsConfiguration
GetInventoryConfiguration PutInventoryConfiguration
GetIntelligentTieringConfiguration PutIntelligentTieringConfiguration
PutBucketOwnershipControls ListBucketByTags
"""

_OBJECT = """
GetObject GetObjectVersion PutObject DeleteObject DeleteObjectVersion
GetObjectAcl GetObjectVersionAcl PutObjectAcl PutObjectVersionAcl
GetObjectTagging GetObjectVersionTagging PutObjectTagging PutObjectVersionTagging
DeleteObjectTagging DeleteObjectVersionTagging
GetObjectAttributes GetObjectVersionAttributes
GetObjectRetention PutObjectRetention GetObjectLegalHold PutObjectLegalHold
BypassGovernanceRetention RestoreObject GetObjectTorrent GetObjectVersionTorrent
AbortMultipartUpload ListMultipartUploadParts
GetObjectVersionForReplication ReplicateObject ReplicateDelete ReplicateTags
ObjectOwnerOverrideToBucketOwner InitiateReplication
"""


def _table() -> dict[str, Kind]:
    table: dict[str, Kind] = {}
    for kind, names in (("service", _SERVICE), ("bucket", _BUCKET), ("object", _OBJECT)):
        for name in names.split():
            table["s3:" + name.lower()] = kind  # type: ignore[assignment]
    return table


# lower-cased "s3:getobject" -> kind; actions are compared case-insensitively
ACTIONS: dict[str, Kind] = _table()

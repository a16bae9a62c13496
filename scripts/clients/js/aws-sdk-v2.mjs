// The AWS SDK for JavaScript v2 (maintenance mode, still widely deployed) against an S3 endpoint.
// Usage: node aws-sdk-v2.mjs ENDPOINT   (output contract: ../lib.sh, steps.mjs)
import { createRequire } from "node:module";
import { assert, bytes, finish, step } from "./steps.mjs";

const require = createRequire(import.meta.url);
let AWS;
try {
  process.env.AWS_SDK_JS_SUPPRESS_MAINTENANCE_MODE_MESSAGE = "1";
  AWS = require("aws-sdk");
} catch {
  process.exit(77); // not installed: npm install in this directory
}
console.log(`version aws-sdk ${AWS.VERSION}, node ${process.version}`);

const s3 = new AWS.S3({
  endpoint: process.argv[2],
  s3ForcePathStyle: true,
  region: "us-east-1",
  signatureVersion: "v4",
  accessKeyId: "test",
  secretAccessKey: "test",
  maxRetries: 0,
});
const Bucket = `aws-sdk-v2-check-${process.pid}`;

await step("createBucket, headBucket", async () => {
  await s3.createBucket({ Bucket }).promise();
  await s3.headBucket({ Bucket }).promise();
});

await step("putObject with metadata, getObject, headObject, ranged getObject", async () => {
  const data = bytes(100000, 1);
  const put = await s3.putObject({ Bucket, Key: "dir/obj.bin", Body: data, ContentType: "application/x-test", Metadata: { k: "v" } }).promise();
  const got = await s3.getObject({ Bucket, Key: "dir/obj.bin" }).promise();
  assert(got.Body.equals(data) && got.ETag === put.ETag, "round trip");
  assert(got.ContentType === "application/x-test" && got.Metadata.k === "v", "headers");
  const head = await s3.headObject({ Bucket, Key: "dir/obj.bin" }).promise();
  assert(head.ContentLength === data.length, "head");
  const part = await s3.getObject({ Bucket, Key: "dir/obj.bin", Range: "bytes=5-9" }).promise();
  assert(part.Body.equals(data.subarray(5, 10)) && part.ContentRange === "bytes 5-9/100000", "range");
});

await step("listObjects (v1) with marker paging, listObjectsV2 with continuation", async () => {
  for (let i = 0; i < 5; i++) await s3.putObject({ Bucket, Key: `page/k${i}`, Body: "x" }).promise();
  const v1 = [];
  let marker;
  for (;;) {
    const page = await s3.listObjects({ Bucket, Prefix: "page/", MaxKeys: 2, Marker: marker }).promise();
    v1.push(...page.Contents.map((o) => o.Key));
    if (!page.IsTruncated) break;
    marker = page.NextMarker || page.Contents[page.Contents.length - 1].Key;
  }
  assert(v1.join() === "page/k0,page/k1,page/k2,page/k3,page/k4", v1.join());
  const v2 = [];
  let token;
  for (;;) {
    const page = await s3.listObjectsV2({ Bucket, Prefix: "page/", MaxKeys: 2, ContinuationToken: token }).promise();
    v2.push(...page.Contents.map((o) => o.Key));
    if (!page.IsTruncated) break;
    token = page.NextContinuationToken;
  }
  assert(v2.join() === v1.join(), v2.join());
});

await step("upload (managed) of a small body: one putObject", async () => {
  await s3.upload({ Bucket, Key: "up/small", Body: bytes(4000, 2) }).promise();
  assert((await s3.getObject({ Bucket, Key: "up/small" }).promise()).Body.equals(bytes(4000, 2)), "round trip");
});

await step("getSignedUrl (presigned GET)", async () => {
  const link = s3.getSignedUrl("getObject", { Bucket, Key: "up/small", Expires: 60 });
  const answer = await fetch(link);
  assert(answer.ok && Buffer.from(await answer.arrayBuffer()).equals(bytes(4000, 2)), `status ${answer.status}`);
});

await step("upload (managed) of 6 MiB in 5 MiB parts: multipart", async () => {
  const data = bytes(6 * 1024 * 1024 + 1, 3);
  const done = await s3.upload({ Bucket, Key: "up/big", Body: data }, { partSize: 5 * 1024 * 1024, queueSize: 2 }).promise();
  assert(done.ETag.endsWith('-2"'), `multipart ETag ${done.ETag}`);
  assert((await s3.getObject({ Bucket, Key: "up/big" }).promise()).Body.equals(data), "round trip");
}, "CreateMultipartUpload");

await step("copyObject", async () => {
  await s3.copyObject({ Bucket, Key: "copied", CopySource: `${Bucket}/up/small` }).promise();
  assert((await s3.getObject({ Bucket, Key: "copied" }).promise()).Body.equals(bytes(4000, 2)), "copy");
}, "CopyObject");

await step("deleteObjects, deleteObject, deleteBucket", async () => {
  const listed = await s3.listObjectsV2({ Bucket }).promise();
  const gone = await s3.deleteObjects({ Bucket, Delete: { Objects: listed.Contents.map((o) => ({ Key: o.Key })) } }).promise();
  assert(gone.Deleted.length === listed.Contents.length && gone.Errors.length === 0, "all deleted");
  await s3.deleteObject({ Bucket, Key: "never-existed" }).promise();
  await s3.deleteBucket({ Bucket }).promise();
});

finish();

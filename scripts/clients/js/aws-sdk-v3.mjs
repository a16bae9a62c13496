// The AWS SDK for JavaScript v3 (default checksum settings) against an S3 endpoint.
// Usage: node aws-sdk-v3.mjs ENDPOINT   (output contract: ../lib.sh, steps.mjs)
import { createRequire } from "node:module";
import { Readable } from "node:stream";
import { assert, bytes, finish, step } from "./steps.mjs";

let s3sdk, storage;
try {
  s3sdk = await import("@aws-sdk/client-s3");
  storage = await import("@aws-sdk/lib-storage");
} catch {
  process.exit(77); // not installed: npm install in this directory
}
const {
  S3Client, CreateBucketCommand, HeadBucketCommand, GetBucketLocationCommand, PutObjectCommand, GetObjectCommand,
  HeadObjectCommand, ListObjectsV2Command, ListObjectsCommand, paginateListObjectsV2, DeleteObjectCommand,
  DeleteObjectsCommand, DeleteBucketCommand, CopyObjectCommand,
} = s3sdk;
const { Upload } = storage;

const require = createRequire(import.meta.url);
console.log(`version @aws-sdk/client-s3 ${require("@aws-sdk/client-s3/package.json").version}, node ${process.version}`);

const endpoint = process.argv[2];
const s3 = new S3Client({
  endpoint,
  region: "us-east-1",
  forcePathStyle: true,
  credentials: { accessKeyId: "test", secretAccessKey: "test" },
  maxAttempts: 1,
});
const Bucket = `aws-sdk-js-check-${process.pid}`;
const read = async (key, extra = {}) => {
  const got = await s3.send(new GetObjectCommand({ Bucket, Key: key, ...extra }));
  return { got, body: Buffer.from(await got.Body.transformToByteArray()) };
};

await step("CreateBucket, HeadBucket, GetBucketLocation", async () => {
  await s3.send(new CreateBucketCommand({ Bucket }));
  await s3.send(new HeadBucketCommand({ Bucket }));
  const location = await s3.send(new GetBucketLocationCommand({ Bucket }));
  assert(!location.LocationConstraint, `us-east-1 is an empty constraint, got ${location.LocationConstraint}`);
});

await step("PutObject (default CRC32) and GetObject with checksum validation", async () => {
  const put = await s3.send(new PutObjectCommand({
    Bucket, Key: "dir/hello.txt", Body: "hello from js", ContentType: "text/plain", Metadata: { origin: "js" },
  }));
  assert(put.ChecksumCRC32, "the response echoes the CRC32");
  const { got, body } = await read("dir/hello.txt", { ChecksumMode: "ENABLED" });
  assert(body.toString() === "hello from js", "body");
  assert(got.ChecksumCRC32 === put.ChecksumCRC32, "stored CRC32");
  assert(got.ContentType === "text/plain" && got.Metadata.origin === "js", "headers and metadata");
});

await step("PutObject of a stream (aws-chunked with a trailing checksum)", async () => {
  const data = bytes(300000, 1);
  await s3.send(new PutObjectCommand({
    Bucket, Key: "stream.bin", Body: Readable.from([data.subarray(0, 100000), data.subarray(100000)]),
    ContentLength: data.length,
  }));
  const { body } = await read("stream.bin", { ChecksumMode: "ENABLED" });
  assert(body.equals(data), "round trip");
});

await step("PutObject with CRC32C, CRC64NVME, SHA1, SHA256", async () => {
  const data = bytes(70000, 2);
  for (const algorithm of ["CRC32C", "CRC64NVME", "SHA1", "SHA256"]) {
    const put = await s3.send(new PutObjectCommand({ Bucket, Key: `sum/${algorithm}`, Body: data, ChecksumAlgorithm: algorithm }));
    const { got, body } = await read(`sum/${algorithm}`, { ChecksumMode: "ENABLED" });
    assert(body.equals(data), `${algorithm} round trip`);
    assert(got[`Checksum${algorithm}`] === put[`Checksum${algorithm}`], `${algorithm} stored`);
  }
});

await step("HeadObject and ranged GetObject", async () => {
  const head = await s3.send(new HeadObjectCommand({ Bucket, Key: "stream.bin" }));
  assert(head.ContentLength === 300000, `length ${head.ContentLength}`);
  const { got, body } = await read("stream.bin", { Range: "bytes=10-19" });
  assert(got.ContentRange === "bytes 10-19/300000" && body.equals(bytes(300000, 1).subarray(10, 20)), "range");
});

await step("ListObjectsV2 paginated, ListObjects v1 with delimiter", async () => {
  for (let i = 0; i < 5; i++) await s3.send(new PutObjectCommand({ Bucket, Key: `page/k${i}`, Body: "x" }));
  const keys = [];
  for await (const page of paginateListObjectsV2({ client: s3, pageSize: 2 }, { Bucket, Prefix: "page/" })) {
    keys.push(...(page.Contents || []).map((o) => o.Key));
  }
  assert(JSON.stringify(keys) === JSON.stringify([0, 1, 2, 3, 4].map((i) => `page/k${i}`)), keys.join());
  const v1 = await s3.send(new ListObjectsCommand({ Bucket, Delimiter: "/" }));
  const prefixes = (v1.CommonPrefixes || []).map((p) => p.Prefix);
  assert(JSON.stringify(prefixes) === JSON.stringify(["dir/", "page/", "sum/"]), prefixes.join());
  assert((v1.Contents || []).map((o) => o.Key).join() === "stream.bin", "top-level keys");
});

await step("Upload (lib-storage) of a small stream: one PutObject", async () => {
  const upload = new Upload({ client: s3, params: { Bucket, Key: "upload/small", Body: Readable.from([bytes(4000, 3)]) } });
  await upload.done();
  const { body } = await read("upload/small");
  assert(body.equals(bytes(4000, 3)), "round trip");
});

await step("Upload (lib-storage) of 6 MiB in 5 MiB parts: multipart", async () => {
  const data = bytes(6 * 1024 * 1024 + 1, 4);
  const upload = new Upload({ client: s3, params: { Bucket, Key: "upload/big", Body: data }, partSize: 5 * 1024 * 1024 });
  const done = await upload.done();
  assert(done.ETag.endsWith('-2"'), `multipart ETag ${done.ETag}`);
  const { body } = await read("upload/big");
  assert(body.equals(data), "round trip");
}, "CreateMultipartUpload");

await step("CopyObject", async () => {
  await s3.send(new CopyObjectCommand({ Bucket, Key: "copied.txt", CopySource: `${Bucket}/dir/hello.txt` }));
  const { body } = await read("copied.txt");
  assert(body.toString() === "hello from js", "copy");
}, "CopyObject");

await step("DeleteObjects (checksummed body), DeleteObject, DeleteBucket", async () => {
  const listed = await s3.send(new ListObjectsV2Command({ Bucket }));
  const keys = (listed.Contents || []).map((o) => ({ Key: o.Key }));
  const deleted = await s3.send(new DeleteObjectsCommand({ Bucket, Delete: { Objects: keys } }));
  assert((deleted.Deleted || []).length === keys.length && !deleted.Errors, "all deleted");
  await s3.send(new DeleteObjectCommand({ Bucket, Key: "never-existed" }));
  await s3.send(new DeleteBucketCommand({ Bucket }));
});

finish();

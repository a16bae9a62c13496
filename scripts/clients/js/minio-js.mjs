// MinIO's JavaScript SDK against an S3 endpoint.
// Usage: node minio-js.mjs ENDPOINT   (output contract: ../lib.sh, steps.mjs)
import { createRequire } from "node:module";
import { mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { assert, bytes, drain, finish, step } from "./steps.mjs";

let Minio;
try {
  Minio = await import("minio");
} catch {
  process.exit(77); // not installed: npm install in this directory
}
const require = createRequire(import.meta.url);
console.log(`version minio ${require("minio/package.json").version}, node ${process.version}`);

const url = new URL(process.argv[2]);
const client = new Minio.Client({
  endPoint: url.hostname,
  port: Number(url.port),
  useSSL: false,
  accessKey: "test",
  secretKey: "test",
  partSize: 5 * 1024 * 1024, // the smallest part: a 6 MiB stream becomes a multipart upload
});
const bucket = `minio-js-check-${process.pid}`;
const work = mkdtempSync(join(tmpdir(), "minio-js-"));

await step("makeBucket, bucketExists, listBuckets", async () => {
  assert(!(await client.bucketExists(bucket)), "absent before");
  await client.makeBucket(bucket);
  assert(await client.bucketExists(bucket), "present after");
  assert((await client.listBuckets()).some((b) => b.name === bucket), "listed");
});

await step("putObject with metadata, statObject, getObject, getPartialObject", async () => {
  const data = bytes(100000, 1);
  await client.putObject(bucket, "dir/obj.bin", data, data.length, { "Content-Type": "application/x-test", "X-Amz-Meta-K": "v" });
  const stat = await client.statObject(bucket, "dir/obj.bin");
  assert(stat.size === data.length && stat.metaData["content-type"] === "application/x-test", JSON.stringify(stat));
  assert(stat.metaData.k === "v", `metadata ${JSON.stringify(stat.metaData)}`);
  assert((await drain(await client.getObject(bucket, "dir/obj.bin"))).equals(data), "get");
  assert((await drain(await client.getPartialObject(bucket, "dir/obj.bin", 10, 20))).equals(data.subarray(10, 30)), "range");
});

await step("fPutObject, fGetObject", async () => {
  const src = join(work, "up.bin");
  writeFileSync(src, bytes(300000, 2));
  await client.fPutObject(bucket, "file.bin", src);
  await client.fGetObject(bucket, "file.bin", join(work, "down.bin"));
  assert(readFileSync(join(work, "down.bin")).equals(readFileSync(src)), "round trip");
});

const list = (stream) =>
  new Promise((resolve, reject) => {
    const names = [];
    stream.on("data", (o) => names.push(o.name ?? o.prefix));
    stream.on("error", reject);
    stream.on("end", () => resolve(names));
  });

await step("listObjects (v1), listObjectsV2, with and without delimiter", async () => {
  // S3 sends Contents before CommonPrefixes; minio emits them in that order.
  const delimited = await list(client.listObjects(bucket, "", false));
  assert(delimited.join() === "file.bin,dir/", `v1 delimited: ${delimited.join()}`);
  assert((await list(client.listObjectsV2(bucket, "", true))).join() === "dir/obj.bin,file.bin", "v2 recursive");
});

await step("presignedGetObject", async () => {
  const link = await client.presignedGetObject(bucket, "file.bin", 60);
  const answer = await fetch(link);
  assert(answer.ok && Buffer.from(await answer.arrayBuffer()).equals(bytes(300000, 2)), `status ${answer.status}`);
});

await step("putObject of 6 MiB (multipart)", async () => {
  const data = bytes(6 * 1024 * 1024 + 1, 3);
  // A Buffer larger than one part is streamed through a multipart upload (minio-js 8.0.7
  // numbers its single part 2 here: the ETag says how many parts, not which).
  const info = await client.putObject(bucket, "big.bin", data, data.length);
  assert(/-\d+$/.test(info.etag), `multipart ETag ${info.etag}`);
  assert((await drain(await client.getObject(bucket, "big.bin"))).equals(data), "round trip");
}, "CreateMultipartUpload");

await step("copyObject", async () => {
  await client.copyObject(bucket, "copied.bin", `/${bucket}/file.bin`);
  assert((await client.statObject(bucket, "copied.bin")).size === 300000, "copied");
}, "CopyObject");

await step("removeObjects, removeObject, removeBucket", async () => {
  const names = await list(client.listObjectsV2(bucket, "", true));
  await client.removeObjects(bucket, names);
  await client.removeObject(bucket, "never-existed");
  assert((await list(client.listObjectsV2(bucket, "", true))).length === 0, "emptied");
  await client.removeBucket(bucket);
});

finish();

#!/usr/bin/env bash
# s3cmd: mb, put, ls, info (ACL, policy, lifecycle reads), get, sync both ways, du,
# cp/mv (server-side copy), multipart put, pending upload listing and abort, del, rb.
# Usage: s3cmd.sh ENDPOINT WORKDIR   (see lib.sh for the output contract)
set -uo pipefail
. "$(dirname "$0")/lib.sh"
command -v s3cmd >/dev/null || exit 77
ENDPOINT=$1
WORK=$2
echo "version $(s3cmd --version 2>/dev/null | head -n 1)"

HOST=${ENDPOINT#*://}
cat >"$WORK/s3cfg" <<CFG
[default]
access_key = test
secret_key = test
host_base = $HOST
host_bucket = $HOST
use_https = False
bucket_location = us-east-1
CFG
S=(s3cmd -c "$WORK/s3cfg" --no-progress)
B="s3://s3cmd-check-$$"
SRC="$WORK/src"
make_tree "$SRC"

put_get() {
    "${S[@]}" put "$SRC/a.txt" "$B/dir/a.txt" && "${S[@]}" get "$B/dir/a.txt" "$WORK/a.back" && same "$SRC/a.txt" "$WORK/a.back"
}

ls_bucket() {
    local out
    out=$("${S[@]}" ls "$B") && printf '%s\n' "$out" | grep -q "DIR  $B/dir/" &&
        "${S[@]}" ls -r "$B" | grep "$B/dir/a.txt" >/dev/null
}

info_object() {
    local out
    out=$("${S[@]}" info "$B/dir/a.txt") && printf '%s\n' "$out" | grep -q "MD5 sum: *$(md5sum <"$SRC/a.txt" | cut -d' ' -f1)"
}

info_bucket() {
    local out
    out=$("${S[@]}" info "$B") && printf '%s\n' "$out" | grep -q "Location: *us-east-1" &&
        printf '%s\n' "$out" | grep -q "ACL: .*FULL_CONTROL"
}

sync_up_down() {
    "${S[@]}" sync "$SRC/" "$B/tree/" && "${S[@]}" sync "$B/tree/" "$WORK/down/" && diff -r "$SRC" "$WORK/down"
}

du_bucket() {
    local expected
    expected=$(find "$SRC" "$SRC/a.txt" -type f -printf '%s\n' | awk '{ s += $1 } END { print s }')
    local out
    out=$("${S[@]}" du "$B") && printf '%s\n' "$out" | grep -q "^ *$expected "
}

copy_move() {
    "${S[@]}" cp "$B/dir/a.txt" "$B/copied.txt" && "${S[@]}" mv "$B/copied.txt" "$B/moved.txt" &&
        "${S[@]}" get --force "$B/moved.txt" "$WORK/moved.back" && same "$SRC/a.txt" "$WORK/moved.back"
}

multipart_put() {
    make_big "$WORK/big.bin"
    "${S[@]}" put --multipart-chunk-size-mb=5 "$WORK/big.bin" "$B/big.bin" &&
        "${S[@]}" get --force "$B/big.bin" "$WORK/big.back" && same "$WORK/big.bin" "$WORK/big.back"
}

pending_uploads() {
    local id out
    id=$(start_upload "$ENDPOINT" "${B#s3://}" "pending/upload") &&
        out=$("${S[@]}" multipart "$B") && printf '%s\n' "$out" | grep "$B/pending/upload[[:space:]]*$id" >/dev/null &&
        "${S[@]}" abortmp "$B/pending/upload" "$id" &&
        out=$("${S[@]}" multipart "$B") && ! printf '%s\n' "$out" | grep "$id" >/dev/null
}

delete_all() {
    "${S[@]}" del --recursive --force "$B" && expect_eq "" "$("${S[@]}" ls -r "$B")"
}

step "mb" "${S[@]}" mb "$B"
step "put and get" put_get
step "ls" ls_bucket
step "info (object: HEAD, ACL)" info_object
step "info (bucket: location, ACL, policy, lifecycle)" info_bucket
step "sync up and down" sync_up_down
step "du" du_bucket
step_needs CopyObject "cp and mv (server-side copy)" copy_move
step_needs CreateMultipartUpload "multipart put (6 MiB, 5 MiB parts)" multipart_put
step_needs ListMultipartUploads "multipart (list pending uploads), abortmp" pending_uploads
step "del --recursive" delete_all
step "rb" "${S[@]}" rb "$B"
finish

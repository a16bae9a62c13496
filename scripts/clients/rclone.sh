#!/usr/bin/env bash
# rclone against an S3 endpoint: copy, sync, ls, lsjson, check, cat, delete, purge,
# listing v1/v2 with small pages, mtime metadata, server-side moves, multipart uploads
# and the cleanup of pending ones.
# Usage: rclone.sh ENDPOINT WORKDIR   (see lib.sh for the output contract)
set -uo pipefail
. "$(dirname "$0")/lib.sh"
command -v rclone >/dev/null || exit 77
ENDPOINT=$1
WORK=$2
echo "version $(rclone version 2>/dev/null | head -n 1)"

export RCLONE_CONFIG=/dev/null
R=(rclone --s3-provider Other --s3-endpoint "$ENDPOINT" --s3-access-key-id test --s3-secret-access-key test
    --s3-force-path-style --s3-region us-east-1 --low-level-retries 1 --retries 1)
B=":s3:rclone-check-$$"
SRC="$WORK/src"
make_tree "$SRC"

listing() {
    # Sorted recursive listing of files: "size path".
    "${R[@]}" lsf -R --files-only --format sp --separator ' ' "$@" | sort
}
local_listing() {
    (cd "$SRC" && find . -type f -printf '%s %P\n' | sort)
}

ls_tree() {
    expect_eq "$(local_listing)" "$(listing "$B/tree")"
}

lsjson_check() {
    "${R[@]}" lsjson -R --files-only "$B/tree" | python3 -c '
import json, sys
entries = {e["Path"]: e for e in json.load(sys.stdin)}
assert sorted(entries) == sorted(sys.argv[1:]), sorted(entries)
# x-amz-meta-mtime round trip: the modification time set locally before the copy.
assert entries["a.txt"]["ModTime"].startswith("2021-02-03T04:05:06"), entries["a.txt"]["ModTime"]
' "a.txt" "with space+plus&amp%.txt" "sub/ünïcødé ☃.txt" "sub/empty" "sub/deeper/random.bin"
}

paged_listings() {
    local version enc
    for version in 1 2; do
        for enc in true false; do
            expect_eq "$(local_listing)" "$(listing --s3-list-version $version --s3-list-chunk 2 \
                --s3-list-url-encode=$enc "$B/tree")" || return 1
        done
    done
}

sync_changes() {
    rm "$SRC/sub/empty"
    printf 'new\n' >"$SRC/new.txt"
    "${R[@]}" sync "$SRC" "$B/tree" && expect_eq "$(local_listing)" "$(listing "$B/tree")"
}

sync_mtime_only() {
    # Same content, new mtime: rclone rewrites the metadata in place with CopyObject (REPLACE).
    touch -d '2022-03-04 05:06:07' "$SRC/a.txt"
    "${R[@]}" sync "$SRC" "$B/tree" &&
        "${R[@]}" lsjson "$B/tree/a.txt" | grep '"ModTime":"2022-03-04T05:06:07' >/dev/null
}

cat_file() {
    expect_eq "hello" "$("${R[@]}" cat "$B/tree/a.txt")"
}

rcat_stdin() {
    printf 'streamed from stdin' | "${R[@]}" rcat "$B/rcat.txt" &&
        expect_eq "streamed from stdin" "$("${R[@]}" cat "$B/rcat.txt")"
}

md5sums() {
    expect_eq "$(cd "$SRC" && find . -type f -exec md5sum {} + | sed 's#  \./#  #' | sort)" \
        "$("${R[@]}" md5sum "$B/tree" | sort)"
}

server_side_move() {
    "${R[@]}" moveto "$B/tree/new.txt" "$B/moved/new.txt" &&
        expect_eq "new" "$("${R[@]}" cat "$B/moved/new.txt")" &&
        expect_eq "" "$("${R[@]}" lsf "$B/tree/new.txt" 2>/dev/null)"
}

multipart_copy() {
    make_big "$WORK/big.bin"
    "${R[@]}" copy --s3-upload-cutoff 5M --s3-chunk-size 5M "$WORK/big.bin" "$B/big" &&
        "${R[@]}" check --download "$WORK" "$B/big" --include big.bin
}

pending_uploads() {
    # ListMultipartUploads, then AbortMultipartUpload for each: what `rclone cleanup` does.
    start_upload "$ENDPOINT" "${B#:s3:}" "pending/one" >/dev/null &&
        "${R[@]}" backend list-multipart-uploads "$B" | grep '"Key": "pending/one"' >/dev/null &&
        "${R[@]}" backend cleanup "$B" -o max-age=0s &&
        expect_eq 0 "$("${R[@]}" backend list-multipart-uploads "$B" | grep -c '"UploadId"')"
}

delete_filtered() {
    "${R[@]}" delete --include '*.txt' "$B/tree" &&
        expect_eq "$(cd "$SRC" && find . -type f ! -name '*.txt' -printf '%s %P\n' | sort)" "$(listing "$B/tree")"
}

purge_bucket() {
    "${R[@]}" purge "$B" && ! "${R[@]}" lsf ":s3:" | grep -x "${B#:s3:}/" >/dev/null
}

step "mkdir (CreateBucket)" "${R[@]}" mkdir "$B"
step "copy a tree" "${R[@]}" copy "$SRC" "$B/tree"
step "ls" ls_tree
step "lsjson with mtime metadata" lsjson_check
step "check (size, MD5)" "${R[@]}" check "$SRC" "$B/tree"
step "check --download" "${R[@]}" check --download "$SRC" "$B/tree"
step "list v1/v2, pages of 2, url-encoded or not" paged_listings
step "cat" cat_file
step "md5sum (ETags)" md5sums
step "rcat from stdin" rcat_stdin
step "sync (uploads and deletes)" sync_changes
step_needs CopyObject "sync of an mtime-only change (metadata update)" sync_mtime_only
step_needs CopyObject "moveto (server-side copy + delete)" server_side_move
step_needs CreateMultipartUpload "multipart upload (6 MiB, 5 MiB parts)" multipart_copy
step_needs ListMultipartUploads "list and clean up pending multipart uploads" pending_uploads
step "delete --include" delete_filtered
step "purge (bucket and contents)" purge_bucket
finish

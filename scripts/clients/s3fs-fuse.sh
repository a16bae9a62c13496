#!/usr/bin/env bash
# s3fs-fuse: mount a bucket and use it as a directory (write, read, list, mkdir, rm, rename).
# Needs FUSE (/dev/fuse, fusermount) and the right to mount (root in a container).
# Usage: s3fs-fuse.sh ENDPOINT WORKDIR   (see lib.sh for the output contract)
set -uo pipefail
. "$(dirname "$0")/lib.sh"
command -v s3fs >/dev/null && command -v fusermount >/dev/null && [ -w /dev/fuse ] || exit 77
ENDPOINT=$1
WORK=$2
echo "version s3fs-fuse $(s3fs --version 2>/dev/null | head -n 1 | sed -n 's/.* V\([0-9.]*\).*/\1/p')"

export AWS_ACCESS_KEY_ID=test AWS_SECRET_ACCESS_KEY=test
BUCKET="s3fs-fuse-check-$$"
MNT="$WORK/mnt"
mkdir -p "$MNT"
SRC="$WORK/src"
make_tree "$SRC"
unmount() {
    mountpoint -q "$MNT" && fusermount -u "$MNT"
}
trap unmount EXIT

create_bucket() {
    # s3fs mounts an existing bucket: create it with a plain PUT (the server runs without credentials).
    python3 - "$ENDPOINT" "$BUCKET" <<'PY'
import sys, urllib.request
request = urllib.request.Request(f"{sys.argv[1]}/{sys.argv[2]}", method="PUT")
with urllib.request.urlopen(request, timeout=10) as answer:
    assert answer.status == 200
PY
}

mount_bucket() {
    s3fs "$BUCKET" "$MNT" -o url="$ENDPOINT" -o use_path_request_style -o endpoint=us-east-1 \
        -o stat_cache_expire=1 -o retries=1 -o dbglevel=warn &&
        for _ in $(seq 1 50); do mountpoint -q "$MNT" && return 0; sleep 0.1; done
    return 1
}

copy_in_and_read() {
    cp -r "$SRC/." "$MNT/" && diff -r "$SRC" "$MNT"
}

mkdir_and_list() {
    mkdir "$MNT/newdir" && printf 'x' >"$MNT/newdir/f" && expect_eq "f" "$(ls "$MNT/newdir")"
}

remove() {
    rm "$MNT/newdir/f" && rmdir "$MNT/newdir" && [ ! -e "$MNT/newdir" ]
}

rename() {
    mv "$MNT/a.txt" "$MNT/renamed.txt" && same "$SRC/a.txt" "$MNT/renamed.txt" && [ ! -e "$MNT/a.txt" ]
}

remount_and_read() {
    fusermount -u "$MNT" && mount_bucket && diff -r "$SRC/sub" "$MNT/sub"
}

step "create the bucket" create_bucket
step "mount" mount_bucket
step "copy a tree in, read it back" copy_in_and_read
step "mkdir, write, ls" mkdir_and_list
step "rm, rmdir" remove
step_needs CopyObject "mv (server-side copy)" rename
step "unmount, mount again, read" remount_and_read
finish

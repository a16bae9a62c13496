#!/usr/bin/env bash
# restic with an s3: repository: init, backup, snapshots, check (with data), restore,
# ListObjects v1, forget --prune.
# Usage: restic.sh ENDPOINT WORKDIR   (see lib.sh for the output contract)
set -uo pipefail
. "$(dirname "$0")/lib.sh"
command -v restic >/dev/null || exit 77
ENDPOINT=$1
WORK=$2
echo "version $(restic version 2>/dev/null | head -n 1 | cut -d' ' -f1-2)"

export AWS_ACCESS_KEY_ID=test AWS_SECRET_ACCESS_KEY=test AWS_DEFAULT_REGION=us-east-1
export RESTIC_PASSWORD=coffer-check RESTIC_CACHE_DIR="$WORK/cache"
export RESTIC_REPOSITORY="s3:$ENDPOINT/restic-check-$$"
SRC="$WORK/src"
make_tree "$SRC"

snapshot_count() {
    restic snapshots --json "$@" | python3 -c 'import json, sys; print(len(json.load(sys.stdin)))'
}

second_backup() {
    printf 'changed\n' >>"$SRC/a.txt"
    printf 'added\n' >"$SRC/added.txt"
    restic backup -q "$SRC" && expect_eq 2 "$(snapshot_count)"
}

snapshots_v1() {
    expect_eq 2 "$(snapshot_count -o s3.list-objects-v1=true)"
}

restore_latest() {
    restic restore latest --target "$WORK/restore" && diff -r "$SRC" "$WORK/restore/$SRC"
}

prune() {
    restic forget -q --keep-last 1 --prune && expect_eq 1 "$(snapshot_count)"
}

step "init (GetBucketLocation, CreateBucket)" restic init
step "backup" restic backup -q "$SRC"
step "second backup, snapshots" second_backup
step "snapshots over ListObjects v1" snapshots_v1
step "check --read-data" restic check --read-data
step "restore latest" restore_latest
step "forget --prune (DeleteObject)" prune
step "check after prune" restic check
finish

#!/usr/bin/env bash
# The aws CLI's high-level `aws s3` commands: mb, cp, ls, sync, mv, rm, rb.
# Usage: awscli.sh ENDPOINT WORKDIR   (see lib.sh for the output contract)
# Uses AWS_CLI (default: `aws` on PATH, e.g. .venv/bin/aws from the test extra).
set -uo pipefail
. "$(dirname "$0")/lib.sh"
AWS_CLI=${AWS_CLI:-aws}
command -v "$AWS_CLI" >/dev/null || exit 77
ENDPOINT=$1
WORK=$2
echo "version $("$AWS_CLI" --version 2>&1 | head -n 1 | cut -d' ' -f1)"

export AWS_ACCESS_KEY_ID=test AWS_SECRET_ACCESS_KEY=test AWS_DEFAULT_REGION=us-east-1
export AWS_CONFIG_FILE=/dev/null AWS_SHARED_CREDENTIALS_FILE=/dev/null AWS_MAX_ATTEMPTS=1
A=("$AWS_CLI" --endpoint-url "$ENDPOINT" s3)
B="s3://awscli-check-$$"
SRC="$WORK/src"
make_tree "$SRC"

cp_round_trip() {
    "${A[@]}" cp "$SRC/a.txt" "$B/one/a.txt" && "${A[@]}" cp "$B/one/a.txt" "$WORK/a.back" && same "$SRC/a.txt" "$WORK/a.back"
}

ls_recursive() {
    local out
    out=$("${A[@]}" ls --recursive "$B") && printf '%s\n' "$out" | grep ' one/a.txt$' >/dev/null
}

sync_both_ways() {
    "${A[@]}" sync "$SRC" "$B/tree" && "${A[@]}" sync "$B/tree" "$WORK/down" && diff -r "$SRC" "$WORK/down"
}

sync_delete() {
    rm "$SRC/sub/empty"
    "${A[@]}" sync --delete "$SRC" "$B/tree" && rm -r "$WORK/down" && "${A[@]}" sync "$B/tree" "$WORK/down" &&
        diff -r "$SRC" "$WORK/down"
}

multipart_cp() {
    # 9 MiB is above the CLI's 8 MiB multipart threshold.
    head -c $((9 * 1024 * 1024)) /dev/urandom >"$WORK/big.bin"
    "${A[@]}" cp "$WORK/big.bin" "$B/big.bin" && "${A[@]}" cp "$B/big.bin" "$WORK/big.back" && same "$WORK/big.bin" "$WORK/big.back"
}

move() {
    "${A[@]}" mv "$B/one/a.txt" "$B/moved.txt" && "${A[@]}" cp "$B/moved.txt" "$WORK/moved.back" && same "$SRC/a.txt" "$WORK/moved.back"
}

remove_all() {
    "${A[@]}" rm --recursive "$B" && expect_eq "" "$("${A[@]}" ls --recursive "$B")"
}

step "mb" "${A[@]}" mb "$B"
step "cp up and down" cp_round_trip
step "ls --recursive" ls_recursive
step "sync up and down" sync_both_ways
step "sync --delete" sync_delete
step_needs CreateMultipartUpload "cp of 9 MiB (multipart)" multipart_cp
step_needs CopyObject "mv (server-side copy)" move
step "rm --recursive" remove_all
step "rb" "${A[@]}" rb "$B"
finish

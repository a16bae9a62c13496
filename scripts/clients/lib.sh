# Shared by the client checks in this directory (sourced, not run).
#
# Contract of a check script: `CHECK.sh ENDPOINT WORKDIR`. It prints `version <text>`
# first, then one line per step: `ok NAME`, `FAIL NAME` (followed by the tail of the
# output, indented), or `xfail NAME (OPERATION not implemented)`; last a line
# `summary passed=N failed=N xfailed=N`. Exit 0 when nothing failed, 1 otherwise,
# 77 when the client is not installed. COFFER_MISSING_OPS (comma-separated S3
# operation names the server does not implement yet) turns steps that need one
# into expected failures; a step that passes anyway is a failure (it no longer
# needs the operation, or the list is stale).

PASSED=0
FAILED=0
XFAILED=0

# Clients talk plain HTTP to the loopback server; a CA bundle from the environment
# only gets in the way (the Go AWS SDK refuses AWS_CA_BUNDLE with its custom transport).
unset AWS_CA_BUNDLE

_show_tail() {
    printf '%s\n' "$1" | tail -n 15 | sed 's/^/     | /'
}

# step NAME COMMAND...: run one step, record ok/FAIL.
step() {
    local name=$1 out
    shift
    if out=$("$@" 2>&1); then
        echo "ok    $name"
        PASSED=$((PASSED + 1))
    else
        echo "FAIL  $name"
        _show_tail "$out"
        FAILED=$((FAILED + 1))
    fi
}

missing() {
    case ",${COFFER_MISSING_OPS:-}," in
    *",$1,"*) return 0 ;;
    *) return 1 ;;
    esac
}

# step_needs OPERATION NAME COMMAND...: a step that cannot pass until OPERATION exists.
step_needs() {
    local op=$1 name=$2 out
    shift 2
    if ! missing "$op"; then
        step "$name" "$@"
        return
    fi
    if out=$("$@" 2>&1); then
        echo "FAIL  $name (passed although $op is listed as missing: update COFFER_MISSING_OPS)"
        FAILED=$((FAILED + 1))
    else
        echo "xfail $name ($op not implemented)"
        XFAILED=$((XFAILED + 1))
    fi
}

finish() {
    echo "summary passed=$PASSED failed=$FAILED xfailed=$XFAILED"
    [ "$FAILED" -eq 0 ]
}

# same FILE_A FILE_B: byte-identical files.
same() {
    cmp -- "$1" "$2"
}

# expect_eq EXPECTED ACTUAL: a readable assertion for captured output.
expect_eq() {
    if [ "$1" != "$2" ]; then
        printf 'expected:\n%s\ngot:\n%s\n' "$1" "$2"
        return 1
    fi
}

# Small local tree with the names clients get wrong: spaces, '+', '&', '%', non-ASCII.
make_tree() {
    local dir=$1
    mkdir -p "$dir/sub/deeper"
    printf 'hello\n' >"$dir/a.txt"
    printf 'plus and space\n' >"$dir/with space+plus&amp%.txt"
    printf 'unicode\n' >"$dir/sub/ünïcødé ☃.txt"
    printf '' >"$dir/sub/empty"
    head -c 200000 /dev/urandom >"$dir/sub/deeper/random.bin"
    touch -d '2021-02-03 04:05:06' "$dir/a.txt"
}

# make_big FILE: a 6 MiB file, one byte over a 5 MiB part so uploads take two parts.
make_big() {
    head -c $((6 * 1024 * 1024 + 1)) /dev/urandom >"$1"
}

# start_upload ENDPOINT BUCKET KEY: begin a multipart upload and leave it pending
# (unsigned: the matrix's server runs without credentials); prints its UploadId.
start_upload() {
    python3 - "$1" "$2" "$3" <<'PY'
import re, sys, urllib.parse, urllib.request
endpoint, bucket, key = sys.argv[1:]
request = urllib.request.Request(f"{endpoint}/{bucket}/{urllib.parse.quote(key)}?uploads", method="POST")
with urllib.request.urlopen(request, timeout=10) as answer:
    print(re.search(rb"<UploadId>(.*?)</UploadId>", answer.read()).group(1).decode())
PY
}

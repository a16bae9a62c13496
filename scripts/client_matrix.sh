#!/usr/bin/env bash
# Run every S3 client available on this machine against a fresh Coffer server and
# print a pass/fail table (docs/clients.md).
#
#   scripts/client_matrix.sh              # the clients that are installed
#   scripts/client_matrix.sh --install    # first install the missing ones (pip extra
#                                         # `clients` into .venv-clients; as root, Debian's
#                                         # rclone, restic, s3cmd, s3fs-fuse and AWS CLI v2;
#                                         # the npm packages of scripts/clients/js)
#   scripts/client_matrix.sh --python PATH  # the Python environment with coffer and the clients
#   scripts/client_matrix.sh --keep       # keep the work directory (server log, client output)
#   scripts/client_matrix.sh -- --storage memory   # anything after -- goes to `coffer serve`
#
# Exit status: 0 when no client failed (missing clients are SKIP, operations the
# server does not implement yet are expected failures), 1 otherwise.
set -uo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
CLIENTS="$ROOT/scripts/clients"
INSTALL=0
KEEP=0
PY=""
SERVER_ARGS=()
while [ $# -gt 0 ]; do
    case "$1" in
    --)
        shift
        SERVER_ARGS=("$@")
        break
        ;;
    --install) INSTALL=1 ;;
    --keep) KEEP=1 ;;
    --python)
        PY=$2
        shift
        ;;
    -h | --help)
        sed -n '2,16p' "$0" | sed 's/^# \{0,1\}//'
        exit 0
        ;;
    *)
        echo "unknown argument: $1" >&2
        exit 2
        ;;
    esac
    shift
done

install_clients() {
    local venv="$ROOT/.venv-clients"
    if [ ! -x "$venv/bin/python" ]; then
        python3 -m venv "$venv" || return 1
    fi
    # Two steps: s3fs's aiobotocore pins botocore, so the test extra is resolved against
    # the botocore it chose (one resolve of both extras makes pip backtrack for minutes).
    "$venv/bin/pip" install -q -e "$ROOT[clients]" || return 1
    "$venv/bin/pip" freeze | grep -iE '^(aiobotocore|botocore)==' >"$venv/constraints.txt"
    "$venv/bin/pip" install -q -e "$ROOT[test]" -c "$venv/constraints.txt" || return 1
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
        # command:package (Debian's awscli is the AWS CLI v2, s3fs is s3fs-fuse)
        local wanted=() pair
        for pair in rclone:rclone restic:restic s3cmd:s3cmd s3fs:s3fs aws:awscli; do
            command -v "${pair%%:*}" >/dev/null || wanted+=("${pair#*:}")
        done
        if [ ${#wanted[@]} -gt 0 ]; then
            apt-get update -qq && apt-get install -y -qq "${wanted[@]}" >/dev/null
        fi
    fi
    if command -v npm >/dev/null; then
        (cd "$CLIENTS/js" && npm install --no-audit --no-fund --silent --no-package-lock)
    fi
}

if [ "$INSTALL" = 1 ]; then
    install_clients || echo "warning: some clients failed to install" >&2
fi
if [ -z "$PY" ]; then
    for candidate in "$ROOT/.venv-clients/bin/python" "$ROOT/.venv/bin/python"; do
        if [ -x "$candidate" ]; then
            PY=$candidate
            break
        fi
    done
fi
if [ -n "$PY" ] && [ -x "$PY" ]; then
    # Absolute, without resolving the venv's symlink (the server runs from another directory).
    PY="$(cd "$(dirname "$PY")" && pwd)/$(basename "$PY")"
fi
if [ -z "$PY" ] || ! "$PY" -c 'import coffer' 2>/dev/null; then
    echo "no Python environment with coffer installed: run the README's install command or pass --python" >&2
    exit 2
fi

WORK=$(mktemp -d "${TMPDIR:-/tmp}/coffer-matrix.XXXXXX")
PORT=$("$PY" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
ENDPOINT="http://127.0.0.1:$PORT"
SERVER_PID=""
cleanup() {
    if [ -n "$SERVER_PID" ]; then
        kill "$SERVER_PID" 2>/dev/null
        wait "$SERVER_PID" 2>/dev/null
    fi
    if [ "$KEEP" = 1 ]; then
        echo "work directory kept: $WORK"
    else
        rm -rf "$WORK"
    fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

(cd "$WORK" && exec env -u COFFER_CONFIG "$PY" -m coffer serve --port "$PORT" --data-dir "$WORK/data" \
    --fsync never --log-level warning "${SERVER_ARGS[@]}" >"$WORK/server.log" 2>&1) &
SERVER_PID=$!
for _ in $(seq 1 100); do
    if "$PY" -c "import socket; socket.create_connection(('127.0.0.1', $PORT), 0.2)" 2>/dev/null; then
        break
    fi
    sleep 0.1
done
if ! kill -0 "$SERVER_PID" 2>/dev/null; then
    echo "the server did not start:" >&2
    cat "$WORK/server.log" >&2
    exit 1
fi

# Operations whose absence turns a client's step into an expected failure.
MISSING=$("$PY" -c '
from coffer.server.handlers import HANDLERS
print(",".join(op for op in ("CreateMultipartUpload", "CopyObject", "ListMultipartUploads") if op not in HANDLERS))')
export COFFER_MISSING_OPS=$MISSING
SERVER_VERSION=$("$PY" -c 'import coffer; print(coffer.__version__)')

ROWS=()
ANY_FAILED=0

# record CLIENT VERSION RESULT PASSED FAILED XFAILED SECONDS
record() {
    ROWS+=("$(printf '%-22s %-44.44s %-5s %6s %6s %6s %7s' "$@")")
    [ "$3" = FAIL ] && ANY_FAILED=1
}

# run_check NAME COMMAND...: a check that follows scripts/clients/lib.sh's output contract.
run_check() {
    local name=$1 dir="$WORK/$1" started rc out version summary passed failed xfailed
    shift
    mkdir -p "$dir/tmp"
    started=$(date +%s.%N)
    out=$(cd "$dir/tmp" && "$@" "$ENDPOINT" "$dir/tmp" 2>&1)
    rc=$?
    printf '%s\n' "$out" >"$dir/output.txt"
    local seconds
    seconds=$(awk -v a="$started" -v b="$(date +%s.%N)" 'BEGIN { printf "%.1f", b - a }')
    if [ "$rc" = 77 ]; then
        record "$name" "not installed" SKIP - - - -
        return
    fi
    version=$(printf '%s\n' "$out" | sed -n 's/^version //p' | head -n 1)
    summary=$(printf '%s\n' "$out" | grep '^summary ' | tail -n 1)
    passed=$(printf '%s' "$summary" | sed -n 's/.*passed=\([0-9]*\).*/\1/p')
    failed=$(printf '%s' "$summary" | sed -n 's/.* failed=\([0-9]*\).*/\1/p')
    xfailed=$(printf '%s' "$summary" | sed -n 's/.*xfailed=\([0-9]*\).*/\1/p')
    echo "== $name"
    printf '%s\n' "$out" | grep -v '^summary ' | sed 's/^/   /'
    if [ "$rc" = 0 ] && [ -n "$summary" ]; then
        record "$name" "${version:-?}" PASS "${passed:-0}" "${failed:-0}" "${xfailed:-0}" "$seconds"
    else
        record "$name" "${version:-?}" FAIL "${passed:-0}" "${failed:-?}" "${xfailed:-0}" "$seconds"
    fi
}

# Python clients: the pytest module, pointed at this server, one client at a time.
python_check() {
    local module=$1 selector=$2 endpoint=$3 version
    version=$("$PY" -c "import importlib.metadata as m; print(m.version('$module'))" 2>/dev/null) || exit 77
    "$PY" -c "import $module" 2>/dev/null || exit 77
    echo "version $module $version"
    local out rc
    out=$(COFFER_CLIENTS_ENDPOINT=$endpoint "$PY" -m pytest -q -rfEX -p no:cacheprovider --rootdir "$ROOT" \
        "$ROOT/tests/test_clients_python.py" -k "$selector" 2>&1)
    rc=$?
    local last passed failed xfailed
    last=$(printf '%s\n' "$out" | tail -n 1)
    passed=$(printf '%s' "$last" | grep -o '[0-9]* passed' | cut -d' ' -f1)
    failed=$(( $(printf '%s' "$last" | grep -o '[0-9]* failed' | cut -d' ' -f1 || echo 0) + 0 ))
    failed=$((failed + $(printf '%s' "$last" | grep -o '[0-9]* error' | cut -d' ' -f1 || echo 0) + 0))
    xfailed=$(printf '%s' "$last" | grep -o '[0-9]* xfailed' | cut -d' ' -f1)
    if [ "$rc" != 0 ]; then
        printf '%s\n' "$out" | grep -E '^(FAILED|ERROR|XPASS)' | sed 's/^/FAIL  /'
        [ "$failed" = 0 ] && failed=1
    fi
    printf '%s\n' "$out" | tail -n 1 | sed 's/^/ok    pytest: /'
    echo "summary passed=${passed:-0} failed=$failed xfailed=${xfailed:-0}"
    [ "$rc" = 0 ]
}
export -f python_check
export PY ROOT

echo "Coffer $SERVER_VERSION at $ENDPOINT ${SERVER_ARGS[*]}; not implemented yet: ${MISSING:-nothing}"
echo
run_check "minio (Python)" bash -c 'python_check minio test_minio "$0"'
run_check "s3fs (Python)" bash -c 'python_check s3fs test_s3fs "$0"'
run_check "pyarrow.fs (Python)" bash -c 'python_check pyarrow test_pyarrow "$0"'
run_check "boto3 s3transfer" bash -c 'python_check boto3 test_s3transfer "$0"'
# The aws CLI: v1 from the Python environment (the test extra), and a v2 (Debian's
# awscli package, or AWS's installer) if one is on PATH.
VENV_AWS=$(dirname "$PY")/aws
if [ -x "$VENV_AWS" ]; then
    run_check "aws CLI v1 (venv)" env AWS_CLI="$VENV_AWS" "$CLIENTS/awscli.sh"
else
    record "aws CLI v1 (venv)" "not installed" SKIP - - - -
fi
V2_AWS=""
for candidate in $(type -ap aws); do
    if "$candidate" --version 2>&1 | grep '^aws-cli/2\.' >/dev/null; then
        V2_AWS=$candidate
        break
    fi
done
if [ -n "$V2_AWS" ]; then
    run_check "aws CLI v2" env AWS_CLI="$V2_AWS" "$CLIENTS/awscli.sh"
else
    record "aws CLI v2" "not installed" SKIP - - - -
fi
run_check "rclone" "$CLIENTS/rclone.sh"
run_check "restic" "$CLIENTS/restic.sh"
run_check "s3cmd" "$CLIENTS/s3cmd.sh"
run_check "s3fs-fuse (mount)" "$CLIENTS/s3fs-fuse.sh"
for js in aws-sdk-v3:"aws-sdk-js v3" aws-sdk-v2:"aws-sdk-js v2" minio-js:"minio-js"; do
    if command -v node >/dev/null; then
        run_check "${js#*:} (node)" env NODE_NO_WARNINGS=1 node "$CLIENTS/js/${js%%:*}.mjs"
    else
        record "${js#*:} (node)" "node not installed" SKIP - - - -
    fi
done

echo
printf '%-22s %-44s %-5s %6s %6s %6s %7s\n' client version result passed failed xfail seconds
printf '%s\n' "$(printf '%.0s-' $(seq 1 102))"
printf '%s\n' "${ROWS[@]}"
echo
echo "xfail: steps that need an operation this server does not implement yet (${MISSING:-none})."
if [ "$ANY_FAILED" = 1 ]; then
    echo "Some clients FAILED (details above; --keep keeps their output and the server log)."
    exit 1
fi
exit 0

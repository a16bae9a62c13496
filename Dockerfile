# Coffer container image (docs/deploy.md).
#   docker build -t coffer .
#   docker run -p 9000:9000 -v coffer-data:/data --stop-timeout 40 coffer

# Build stage: wheels for Coffer and every dependency, so the runtime stage installs
# offline and carries no compiler, pip cache or source tree.
FROM python:3.11-slim AS build
WORKDIR /src
COPY pyproject.toml README.md ./
COPY coffer ./coffer
RUN pip wheel --no-cache-dir --wheel-dir /wheels ".[compression]"

# Runtime stage.
FROM python:3.11-slim
RUN groupadd --system --gid 10001 coffer \
    && useradd --system --uid 10001 --gid coffer --home-dir /data --no-create-home --shell /usr/sbin/nologin coffer \
    && mkdir /data \
    && chown coffer:coffer /data
COPY --from=build /wheels /wheels
# Pinned by the wheelhouse: --no-index installs exactly the versions the build stage resolved.
# hadolint ignore=DL3013
RUN pip install --no-cache-dir --no-index --find-links=/wheels "coffer[compression]" \
    && rm -rf /wheels

# Settings come from COFFER_* variables (any setting: COFFER_<NAME>, see `coffer init`).
# Secrets (COFFER_ACCESS_KEY / COFFER_SECRET_KEY) belong in `docker run --env-file`, not here.
ENV PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    COFFER_HOST=0.0.0.0 \
    COFFER_PORT=9000 \
    COFFER_DATA_DIR=/data

# Numeric, so the runtime can tell it is not root without reading /etc/passwd.
USER 10001:10001
WORKDIR /data
VOLUME ["/data"]
EXPOSE 9000

# Liveness from /_coffer/health with the standard library: slim images have no curl.
# urlopen raises on a refused connection or a non-2xx answer, so the exit status is non-zero.
HEALTHCHECK --interval=30s --timeout=5s --start-period=15s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:%s/_coffer/health' % os.environ.get('COFFER_PORT', '9000'), timeout=4)"]

# On SIGTERM Coffer stops accepting connections, lets in-flight requests finish for up to
# shutdown_timeout seconds (COFFER_SHUTDOWN_TIMEOUT, default 30), then flushes the store.
# `docker stop` sends SIGKILL after 10 s unless told otherwise: give it shutdown_timeout plus
# a margin (`docker run --stop-timeout 40`, compose `stop_grace_period: 40s`).
STOPSIGNAL SIGTERM
ENTRYPOINT ["coffer"]
CMD ["serve"]

# syntax=docker/dockerfile:1
#
# runtools-tail as a container. By default it runs the daemon on the config
# mounted at /etc/runtools-tail/config.yaml. The image holds no config and no key.
#
#   docker build -t runtools-tail:0.1.0 --build-arg SOURCE_URL=<repository URL> .
#   docker run --read-only --tmpfs /tmp \
#       -v runtools-tail-state:/var/lib/runtools-tail \
#       -v "$PWD/config.yaml:/etc/runtools-tail/config.yaml:ro" \
#       -e RUNTOOLS_API_KEY runtools-tail:0.1.0
#
# The base image tag fixes the Python minor release and the Debian release but
# still moves with Python patch releases and Debian security updates. For
# byte-identical rebuilds, pass a digest:
#   --build-arg PYTHON_IMAGE=python:3.11-slim-bookworm@sha256:<digest>
# The dependencies are resolved from PyPI at build time within the ranges of
# pyproject.toml, so two builds may still install different patch versions.
ARG PYTHON_IMAGE=python:3.11-slim-bookworm

# The build stage is discarded, so the labels that .hadolint.yaml requires go
# only on the runtime stage.
# hadolint ignore=DL3049
FROM ${PYTHON_IMAGE} AS build
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1
WORKDIR /src
COPY pyproject.toml README.md ./
COPY tailer ./tailer
# Wheels of the project and of every dependency, so the runtime stage installs
# without reaching an index.
RUN pip wheel --wheel-dir /wheels .

FROM ${PYTHON_IMAGE}
# VERSION must equal the version in pyproject.toml. The install below requests
# exactly that version, so a stale value fails the build instead of mislabelling it.
ARG VERSION=0.1.0
ARG SOURCE_URL=""
LABEL org.opencontainers.image.title="runtools-tail" \
      org.opencontainers.image.description="Follow the RunTools activity feed and deliver every event once, oldest first." \
      org.opencontainers.image.source="${SOURCE_URL}" \
      org.opencontainers.image.licenses="Apache-2.0" \
      org.opencontainers.image.version="${VERSION}"

# The environment overrides the config file, so these two win over `state_dir`
# and `service.host` in a mounted config. Change them with `docker run -e`.
# The service listener binds every interface because Kubernetes probes and
# Prometheus connect to the pod's address, not to its loopback.
ENV PATH=/opt/runtools-tail/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    RUNTOOLS_TAIL_STATE_DIR=/var/lib/runtools-tail \
    RUNTOOLS_TAIL_SERVICE__HOST=0.0.0.0

# pip compiles the installed packages to bytecode, and PYTHONDONTWRITEBYTECODE
# keeps Python from writing any at run time, so the root filesystem can be read-only.
RUN --mount=type=bind,from=build,source=/wheels,target=/wheels \
    python -m venv /opt/runtools-tail \
    && /opt/runtools-tail/bin/pip install --no-cache-dir --disable-pip-version-check \
        --no-index --find-links /wheels "runtools-tail==${VERSION}" \
    && groupadd --system --gid 10001 runtools-tail \
    && useradd --system --no-log-init --uid 10001 --gid 10001 \
        --home-dir /nonexistent --no-create-home --shell /usr/sbin/nologin runtools-tail \
    && install -d -m 0700 -o 10001 -g 10001 /var/lib/runtools-tail \
    && install -d -m 0755 /etc/runtools-tail

# Relative paths in a config, such as a file sink's `path: ./activity.ndjson`,
# then land in the writable state volume.
WORKDIR /var/lib/runtools-tail
# A numeric user, so that Kubernetes can check runAsNonRoot without a passwd lookup.
USER 10001:10001
VOLUME ["/var/lib/runtools-tail"]
EXPOSE 9464

# The daemon settles each sink's batch within shutdown_grace_secs (10 s by
# default) after SIGTERM, so give `docker stop` a longer timeout (--time 30).
STOPSIGNAL SIGTERM
# The port follows RUNTOOLS_TAIL_SERVICE__PORT when that overrides the default.
# A port changed in the config file, or `service.enabled: false`, needs
# `--no-healthcheck` or a HEALTHCHECK of its own.
HEALTHCHECK --interval=30s --timeout=5s --start-period=15s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:' + os.environ.get('RUNTOOLS_TAIL_SERVICE__PORT', '9464') + '/healthz', timeout=4)"]

ENTRYPOINT ["runtools-tail"]
CMD ["run", "--config", "/etc/runtools-tail/config.yaml"]

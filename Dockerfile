# syntax=docker/dockerfile:1
# The carbonshift operator image: `docker build -t ghcr.io/carbonshift/carbonshift:0.1.0 .`
# (or `make image`). Runs as uid 65532, writes nothing outside /tmp, so the chart can mount the
# root file system read-only.
#
# Pin the base by digest for reproducible builds; look it up with
#   docker buildx imagetools inspect python:3.11-slim-bookworm
# and replace the tag below with python:3.11-slim-bookworm@sha256:<digest>.
ARG PYTHON_IMAGE=python:3.11-slim-bookworm

# ---- build: a wheel of the package and of its dependencies -------------------------------------
FROM ${PYTHON_IMAGE} AS build
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1 PYTHONDONTWRITEBYTECODE=1
WORKDIR /src
COPY pyproject.toml README.md ./
COPY operator ./operator
RUN python -m venv /opt/carbonshift \
 && /opt/carbonshift/bin/pip install --upgrade pip \
 && /opt/carbonshift/bin/pip install . \
 && /opt/carbonshift/bin/python -m compileall -q /opt/carbonshift/lib

# ---- runtime -------------------------------------------------------------------------------------
FROM ${PYTHON_IMAGE}
LABEL org.opencontainers.image.title="carbonshift" \
      org.opencontainers.image.description="Kubernetes operator that runs flexible batch work when and where electricity is greenest" \
      org.opencontainers.image.source="https://github.com/carbonshift/carbonshift" \
      org.opencontainers.image.licenses="Apache-2.0"
# A fixed non-root user (the distroless "nonroot" uid), so runAsNonRoot can verify it.
RUN groupadd --system --gid 65532 carbonshift \
 && useradd --system --uid 65532 --gid 65532 --home-dir /tmp --no-create-home --shell /usr/sbin/nologin carbonshift
COPY --from=build /opt/carbonshift /opt/carbonshift
ENV PATH=/opt/carbonshift/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    HOME=/tmp \
    TMPDIR=/tmp
WORKDIR /tmp
USER 65532:65532
EXPOSE 8080
ENTRYPOINT ["carbonshift"]
CMD ["run"]

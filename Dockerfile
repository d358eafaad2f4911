# The carbonshift operator image. Runs as uid 65532 and writes nothing outside /tmp, so the chart
# mounts the root file system read-only.
#
# With a registry at hand:   docker build -t ghcr.io/carbonshift/carbonshift:0.1.0 .
#   (base python:3.11-slim-bookworm; pin it by digest for reproducible builds:
#    --build-arg PYTHON_IMAGE=python:3.11-slim-bookworm@sha256:<digest>)
# Without one:               make image
#   (hack/engine.py: a base made from Debian packages, wheels downloaded on the host into
#    build/wheelhouse, PIP_OFFLINE=1 so the build itself reaches no network)
# Written for the legacy builder as well as BuildKit: no `# syntax=` line, no RUN --mount.
ARG PYTHON_IMAGE=python:3.11-slim-bookworm

# ---- deps: a venv with the runtime dependencies, from pyproject.toml alone ------------------------
FROM ${PYTHON_IMAGE} AS deps
# Non-empty: install only from build/wheelhouse, never from an index.
ARG PIP_OFFLINE=""
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1 PYTHONDONTWRITEBYTECODE=1 \
    PIP_FIND_LINKS=/src/wheelhouse
WORKDIR /src
# The wildcard lets a plain `docker build` without build/wheelhouse go on (pip then uses PyPI).
COPY pyproject.toml build/wheelhous[e] /src/wheelhouse/
RUN mv wheelhouse/pyproject.toml . \
 && python3 -m venv /opt/carbonshift \
 && python3 -c 'import tomllib; print("\n".join(tomllib.load(open("pyproject.toml", "rb"))["project"]["dependencies"]))' > requirements.txt \
 && /opt/carbonshift/bin/pip install --quiet ${PIP_OFFLINE:+--no-index} -r requirements.txt

# ---- app: the carbonshift package alone, in its own folder (its own small image layer) -------------
FROM deps AS app
ARG PIP_OFFLINE=""
COPY README.md ./
COPY operator ./operator
RUN /opt/carbonshift/bin/pip install --quiet ${PIP_OFFLINE:+--no-index} --no-deps --target /opt/carbonshift-app . \
 && /opt/carbonshift/bin/python -m compileall -q /opt/carbonshift-app

# ---- venv: the dependencies without pip, setuptools and test suites ---------------------------------
FROM deps AS venv
RUN /opt/carbonshift/bin/pip uninstall --quiet --yes pip setuptools \
 && find /opt/carbonshift/lib -depth -type d -name tests -exec rm -rf {} + \
 && echo /opt/carbonshift-app > "$(echo /opt/carbonshift/lib/python3*/site-packages)/carbonshift-app.pth"

# ---- runtime ---------------------------------------------------------------------------------------
FROM ${PYTHON_IMAGE}
LABEL org.opencontainers.image.title="carbonshift" \
      org.opencontainers.image.description="Kubernetes operator that runs flexible batch work when and where electricity is greenest" \
      org.opencontainers.image.source="https://github.com/carbonshift/carbonshift" \
      org.opencontainers.image.licenses="Apache-2.0"
# A fixed non-root user (the distroless "nonroot" uid), so runAsNonRoot can verify it.
RUN groupadd --system --gid 65532 carbonshift \
 && useradd --system --uid 65532 --gid 65532 --home-dir /tmp --no-create-home --shell /usr/sbin/nologin carbonshift
# Two layers: the dependencies (changed by pyproject.toml only), then the code.
COPY --from=venv /opt/carbonshift /opt/carbonshift
COPY --from=app /opt/carbonshift-app /opt/carbonshift-app
ENV PATH=/opt/carbonshift-app/bin:/opt/carbonshift/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    HOME=/tmp \
    TMPDIR=/tmp
WORKDIR /tmp
USER 65532:65532
EXPOSE 8080
ENTRYPOINT ["carbonshift"]
CMD ["run"]

# pgtoken-rotator's container image: built with the project's own Makefile on
# Debian 12, run on Debian 12 slim with only the runtime libraries, as UID 65532.
#
#   make image     (podman, offline: see tests/image/build.sh)
#   docker build -t pgtoken-rotator --build-arg VERSION=$(cat VERSION) \
#       --build-arg GIT_REV=$(git rev-parse --short HEAD) .
#
# The base images are named in full so that podman finds locally made ones
# without a registry; Docker pulls the same names from Docker Hub.

ARG BUILD_IMAGE=docker.io/library/debian:bookworm
ARG RUNTIME_IMAGE=docker.io/library/debian:bookworm-slim

# --- build ----------------------------------------------------------------------
FROM ${BUILD_IMAGE} AS build
# The -dev packages the controller needs (tests/deps.sh, "the controller").
RUN apt-get update \
    && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
        build-essential pkg-config \
        libcurl4-openssl-dev libcjson-dev libyaml-dev libssl-dev libpq-dev libmicrohttpd-dev \
    && rm -rf /var/lib/apt/lists/*
WORKDIR /src
# Only what the build reads (.dockerignore keeps the rest out).
COPY . .
ARG GIT_REV=unknown
RUN make -j"$(nproc)" GIT_REV="${GIT_REV}" all \
    && make install GIT_REV="${GIT_REV}" PREFIX=/usr/local DESTDIR=/out \
    && strip --strip-unneeded /out/usr/local/bin/pgtoken-rotator \
    && /out/usr/local/bin/pgtoken-rotator version

# --- runtime --------------------------------------------------------------------
FROM ${RUNTIME_IMAGE}
# Runtime libraries only: libcurl (HTTPS to the API server and Entra ID),
# cJSON, libyaml, OpenSSL, libpq (the login check), libmicrohttpd (metrics and
# health endpoints), and the CA bundle.
RUN apt-get update \
    && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
        libcurl4 libcjson1 libyaml-0-2 libssl3 libpq5 libmicrohttpd12 ca-certificates \
    && rm -rf /var/lib/apt/lists/* /var/cache/apt/*.bin \
    && echo 'nonroot:x:65532:65532:nonroot:/nonexistent:/usr/sbin/nologin' >> /etc/passwd \
    && echo 'nonroot:x:65532:' >> /etc/group
COPY --from=build /out/usr/local/bin/pgtoken-rotator /usr/local/bin/pgtoken-rotator
COPY LICENSE /usr/share/licenses/pgtoken-rotator/LICENSE

ARG VERSION=unknown
ARG GIT_REV=unknown
LABEL org.opencontainers.image.title="pgtoken-rotator" \
      org.opencontainers.image.description="Keeps Kubernetes Secrets filled with fresh Entra ID tokens for Azure Database for PostgreSQL" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.revision="${GIT_REV}" \
      org.opencontainers.image.source="https://github.com/pgtoken-rotator/pgtoken-rotator" \
      org.opencontainers.image.licenses="Apache-2.0" \
      org.opencontainers.image.base.name="docker.io/library/debian:bookworm-slim"

# Numeric, so that Kubernetes' runAsNonRoot can verify it.
USER 65532:65532
ENTRYPOINT ["/usr/local/bin/pgtoken-rotator"]
CMD ["run"]

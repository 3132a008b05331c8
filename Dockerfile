# pgtoken-rotator's container image: only the binary, the shared libraries it
# loads, the CA bundle and a passwd entry for UID 65532 (packaging/rootfs.sh lays
# them out), on scratch: no shell, no package manager. Built from source with
# the project's own Makefile on Debian 12:
#
#   docker build -t pgtoken-rotator --build-arg VERSION=$(cat VERSION) \
#       --build-arg GIT_REV=$(git rev-parse --short HEAD) \
#       --build-arg CREATED=$(date -u +%Y-%m-%dT%H:%M:%SZ) .
#   (az acr build takes the same --build-arg flags; docker buildx --platform
#   linux/amd64,linux/arm64 builds both architectures)
#
# The release images (both architectures in one OCI archive, from binaries built
# here) are made offline by packaging/image.sh with the last stage of this file.
#
# The build image is named in full so that podman finds a locally made one
# without a registry; Docker pulls the same name from Docker Hub.

ARG BUILD_IMAGE=docker.io/library/debian:bookworm

# --- build ----------------------------------------------------------------------
FROM ${BUILD_IMAGE} AS build
# The -dev packages the controller needs (tests/deps.sh, "the controller"), and
# the CA bundle the image carries.
RUN apt-get update \
    && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
        build-essential pkg-config ca-certificates \
        libcjson-dev libyaml-dev libssl-dev libpq-dev \
    && rm -rf /var/lib/apt/lists/*
WORKDIR /src
# Only what the build reads (.dockerignore keeps the rest out).
COPY . .
ARG GIT_REV=unknown
# Set, it is every file's mtime in the image (reproducible layers).
ARG SOURCE_DATE_EPOCH
RUN make -j"$(nproc)" GIT_REV="${GIT_REV}" all \
    && build/bin/pgtoken-rotator version \
    && packaging/rootfs.sh build/bin/pgtoken-rotator "$(dpkg --print-architecture)" /rootfs

# --- the image --------------------------------------------------------------------
FROM scratch
COPY --from=build /rootfs /

ARG VERSION=unknown
ARG GIT_REV=unknown
# RFC 3339, e.g. $(date -u +%Y-%m-%dT%H:%M:%SZ)
ARG CREATED=unknown
LABEL org.opencontainers.image.title="pgtoken-rotator" \
      org.opencontainers.image.description="Keeps Kubernetes Secrets filled with fresh Entra ID tokens for Azure Database for PostgreSQL" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.revision="${GIT_REV}" \
      org.opencontainers.image.created="${CREATED}" \
      org.opencontainers.image.source="https://github.com/pgtoken-rotator/pgtoken-rotator" \
      org.opencontainers.image.licenses="Apache-2.0"

# GnuTLS is in the process only because libpq's libldap links it; TLS is OpenSSL's.
# Its library constructor would initialise it anyway (0.7 MB of RSS for nothing).
ENV GNUTLS_NO_IMPLICIT_INIT=1

# Numeric, so that Kubernetes' runAsNonRoot can verify it.
USER 65532:65532
ENTRYPOINT ["/usr/local/bin/pgtoken-rotator"]
CMD ["run"]

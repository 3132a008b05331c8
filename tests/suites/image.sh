#!/usr/bin/env bash
# The container image (tests/image/run.sh): the Dockerfile's structure, then the
# release archive from this tree's amd64 and arm64 binaries (packaging/image.sh)
# and each image inside it (about 30 s with podman; SKIP lines where podman cannot
# work). PGTR_IMAGE_BUILD=1 also builds the Dockerfile from source, which takes minutes.
exec "$(dirname "$0")/../image/run.sh"

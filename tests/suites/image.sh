#!/usr/bin/env bash
# The container image's Dockerfile (tests/image/run.sh; PGTR_IMAGE_BUILD=1 also
# builds it with podman, which takes minutes).
exec "$(dirname "$0")/../image/run.sh"

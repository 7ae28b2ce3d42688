#!/usr/bin/env bash
# Build a Debian bookworm image with python3 from Debian packages alone, for hosts that
# reach no container registry. For the sandbox it stands in for python:3.12-slim: the
# kernel needs only python3 >= 3.11 and its standard library.
#
# usage: build-base.sh [ROOTFS_DIR [TAG]]
#   ROOTFS_DIR  an empty or missing directory to build the tree in, kept afterwards;
#               "" or nothing: a temporary one, removed afterwards
#   TAG         the image to create (default rlm-sandbox-base:bookworm)
# Needs root, debootstrap and a Docker daemon; takes about a minute.
set -euo pipefail

rootfs="${1:-}"
tag="${2:-rlm-sandbox-base:bookworm}"
tmp=""
PATH="$PATH:/usr/sbin:/sbin"

die() { echo "build-base.sh: $*" >&2; exit 1; }

[ "$(id -u)" -eq 0 ] || die "debootstrap needs root: run this script as root (sudo bash $0 ...)"
command -v debootstrap >/dev/null || die "debootstrap is not installed: apt-get install -y debootstrap"
command -v docker >/dev/null || die "the docker command is not installed: apt-get install -y docker.io"
docker info >/dev/null 2>&1 || die "no Docker daemon answered 'docker info': start dockerd (bash scripts/setup.sh does)"

if [ -z "$rootfs" ]; then
    tmp="$(mktemp -d "${TMPDIR:-/var/tmp}/rlm-sandbox-rootfs.XXXXXX")"
    rootfs="$tmp"
else
    rootfs="$(realpath -m "$rootfs")"
    [ ! -e "$rootfs" ] || [ -z "$(ls -A "$rootfs")" ] || die "$rootfs is not empty; give an empty or missing directory"
fi

# debootstrap mounts /proc and /sys inside the tree (and binds /dev when run in a
# container). They must be unmounted before anything deletes the tree, or rm would reach
# into the host's.
cleanup() {
    awk -v r="$rootfs/" 'index($2 "/", r) == 1 {print $2}' /proc/mounts | sort -r |
        while read -r m; do umount -l "$m" 2>/dev/null || true; done
    if [ -n "$tmp" ] && [ -d "$tmp" ]; then
        if grep -q " $tmp/" /proc/mounts; then
            echo "build-base.sh: left $tmp in place: something is still mounted inside it" >&2
        else
            rm -rf --one-file-system "$tmp"
        fi
    fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

echo "build-base.sh: debootstrap bookworm with python3 into $rootfs" >&2
debootstrap --variant=minbase --include=python3 bookworm "$rootfs" >&2

# Trim what a sandbox never reads, and the host's own files debootstrap copied in.
# Copyright files stay, as in Debian's own slim images.
rm -rf "$rootfs"/var/lib/apt/lists/* "$rootfs"/var/cache/apt/* "$rootfs"/var/cache/debconf/*-old \
       "$rootfs"/var/cache/ldconfig/* "$rootfs"/var/log/* "$rootfs"/tmp/* "$rootfs"/root/.cache \
       "$rootfs"/usr/share/man/* "$rootfs"/usr/share/info/* "$rootfs"/usr/share/locale/* \
       "$rootfs"/usr/share/lintian
find "$rootfs/usr/share/doc" -mindepth 1 ! -type d ! -name copyright -delete
find "$rootfs/usr/share/doc" -mindepth 1 -type d -empty -delete
: > "$rootfs/etc/resolv.conf"
: > "$rootfs/etc/hostname"

echo "build-base.sh: importing as $tag" >&2
tar --numeric-owner -C "$rootfs" -c . | docker import \
    -c 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
    -c 'ENV LANG=C.UTF-8' \
    -c 'CMD ["python3"]' \
    -m "debootstrap --variant=minbase --include=python3 bookworm" \
    - "$tag" >/dev/null
echo "build-base.sh: built $tag with $(docker run --rm --network none "$tag" python3 -V)" >&2

#!/bin/sh
# Prepare a Docker Engine and the test images for the docker backend's tests.
#
# For CI on a fresh Debian 12 as root; idempotent, so it is also safe on a
# developer machine that already has some of it. No registry is reachable,
# so images are built locally:
#   reproman-test-busybox:latest   busybox-static plus applet links (2 MB)
#   reproman-test-debian:bookworm  debootstrap --variant=minbase (~200 MB)
# Exits non-zero on any failure.
set -eu

BUSYBOX_IMAGE=${REPROMAN_TEST_BUSYBOX_IMAGE:-reproman-test-busybox:latest}
DEBIAN_IMAGE=${REPROMAN_TEST_DEBIAN_IMAGE:-reproman-test-debian:bookworm}
DEBIAN_MIRROR=${DEBIAN_MIRROR:-http://deb.debian.org/debian}
DOCKERD_LOG=${DOCKERD_LOG:-/var/log/dockerd.log}

say() { printf 'docker.sh: %s\n' "$*" >&2; }
die() { say "error: $*"; exit 1; }

# 1. Packages ------------------------------------------------------------------
missing=""
command -v dockerd >/dev/null 2>&1 || missing="$missing docker.io"
[ -x /bin/busybox ] || missing="$missing busybox-static"
command -v debootstrap >/dev/null 2>&1 || missing="$missing debootstrap"
if [ -n "$missing" ]; then
    say "installing:$missing"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -q >/dev/null || die "apt-get update failed"
    # shellcheck disable=SC2086
    apt-get install -y -q $missing >/dev/null || die "apt-get install$missing failed"
fi

# 2. Engine ------------------------------------------------------------------------
if ! docker version >/dev/null 2>&1; then
    say "starting dockerd (log: $DOCKERD_LOG)"
    setsid dockerd >"$DOCKERD_LOG" 2>&1 </dev/null &
    i=0
    until docker version >/dev/null 2>&1; do
        i=$((i + 1))
        [ "$i" -le 60 ] || die "dockerd did not answer within 30 s; see $DOCKERD_LOG"
        sleep 0.5
    done
fi
say "engine answers: $(docker version --format '{{.Server.Version}} (API {{.Server.APIVersion}})')"

WORK=$(mktemp -d /tmp/reproman-docker-ci.XXXXXX)
trap 'rm -rf "$WORK"' EXIT INT TERM

image_present() { docker image inspect "$1" >/dev/null 2>&1; }

# 3. Tiny busybox image --------------------------------------------------------
if image_present "$BUSYBOX_IMAGE"; then
    say "$BUSYBOX_IMAGE present"
else
    say "building $BUSYBOX_IMAGE"
    root="$WORK/busybox"
    mkdir -p "$root/bin" "$root/etc" "$root/root" "$root/tmp" "$root/dev" "$root/proc" "$root/sys"
    chmod 1777 "$root/tmp"
    cp /bin/busybox "$root/bin/busybox"
    for applet in $(/bin/busybox --list); do
        [ "$applet" = busybox ] || ln -s busybox "$root/bin/$applet"
    done
    printf 'root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/:/bin/sh\n' >"$root/etc/passwd"
    printf 'root:x:0:\nnogroup:x:65534:\n' >"$root/etc/group"
    tar -C "$root" -c . | docker import \
        --change 'ENV PATH=/bin' --change 'CMD ["/bin/sh"]' - "$BUSYBOX_IMAGE" >/dev/null \
        || die "docker import of $BUSYBOX_IMAGE failed"
fi

# 4. Full Debian image ---------------------------------------------------------------
if image_present "$DEBIAN_IMAGE"; then
    say "$DEBIAN_IMAGE present"
else
    say "building $DEBIAN_IMAGE with debootstrap (about 25 s)"
    root="$WORK/debian"
    debootstrap --variant=minbase bookworm "$root" "$DEBIAN_MIRROR" >"$WORK/debootstrap.log" 2>&1 \
        || { tail -n 20 "$WORK/debootstrap.log" >&2; die "debootstrap failed"; }
    rm -rf "$root/var/cache/apt/archives/"*.deb "$root/var/lib/apt/lists/"*
    tar -C "$root" -c . | docker import \
        --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
        --change 'CMD ["/bin/bash"]' - "$DEBIAN_IMAGE" >/dev/null \
        || die "docker import of $DEBIAN_IMAGE failed"
fi

# 5. Smoke test: a container runs ------------------------------------------------------
out=$(docker run --rm "$BUSYBOX_IMAGE" sh -c 'echo ok') || die "cannot run a container from $BUSYBOX_IMAGE"
[ "$out" = ok ] || die "unexpected output from $BUSYBOX_IMAGE: $out"
say "ready: $BUSYBOX_IMAGE, $DEBIAN_IMAGE"

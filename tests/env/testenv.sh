#!/usr/bin/env bash
# Brings up the test environment on this machine, idempotently:
#   - a Docker engine that answers (Debian's docker.io, dockerd started by hand when
#     no init system runs it),
#   - the images every scenario needs, built from Debian's archive and PyPI only,
#     rebuilt only when their recipe (or an image they build on) changed,
#   - a local registry (Debian's docker-registry) serving the singleuser test images.
# Usage: testenv.sh up | demo (what `make demo` needs only) | images | status
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
state_dir=${JHTEST_STATE_DIR:-/var/tmp/jhtest}
ca_bundle=${JHTEST_CA_BUNDLE:-/etc/ssl/certs/ca-certificates.crt}
registry_name=jhtest-registry
network_name=jhtest
registry_port=${JHTEST_REGISTRY_PORT:-5000}
debian_mirror=${JHTEST_DEBIAN_MIRROR:-http://deb.debian.org/debian}
recipe_label=org.jhtest.recipe
# docker-stacks' start files, unchanged from upstream, beside the project's clone (as CI has
# it): the singleuser stand-ins are built with them.
# The JupyterHub the hub runs, as the role pins it: the test images run the same.
hub_version=$(sed -n 's/^jupyterhub_version: *//p' "$here/../../roles/jupyterhub/defaults/main.yml")
[ -n "$hub_version" ] || { echo "testenv: no jupyterhub_version in roles/jupyterhub/defaults/main.yml" >&2; exit 1; }
docker_stacks=${JHTEST_DOCKER_STACKS:-$(cd "$here/../../.." && pwd)/shared/upstream/docker-stacks}

log() { printf '[testenv] %s\n' "$*" >&2; }
die() { printf '[testenv] ERROR: %s\n' "$*" >&2; exit 1; }

# Debian packages this machine needs, in two steps: what the images need first (Docker,
# debootstrap), then what only the tests need (the hub's proxy, the browser), installed in
# the background while the images build (start_test_packages, wait_test_packages).
missing_packages() {
    local missing=()
    case $1 in
        images)
            command -v dockerd >/dev/null || missing+=(docker.io)
            command -v debootstrap >/dev/null || missing+=(debootstrap)
            command -v curl >/dev/null || missing+=(curl) ;;
        unit)
            # The quota service's real btrfs tests (tests/unit/test_quotad.py).
            command -v mkfs.btrfs >/dev/null || missing+=(btrfs-progs) ;;
        tests)
            # The hub's proxy (integration tests) and the browser of the end-to-end test.
            [ -x /usr/bin/configurable-http-proxy ] || missing+=(node-configurable-http-proxy)
            [ -x /usr/bin/chromium ] || missing+=(chromium)
            # The campus directory of the login tests (tests/integration/ldapserver.py runs its
            # own slapd on loopback; the package's system service is not used).
            [ -x /usr/sbin/slapd ] || missing+=(slapd)
            command -v ldapadd >/dev/null || missing+=(ldap-utils) ;;
    esac
    echo "${missing[*]}"
}

apt_install() {
    [ -n "$*" ] || return 0
    log "installing from Debian: $*"
    export DEBIAN_FRONTEND=noninteractive
    # One apt at a time: the lock is waited for, not failed on.
    apt-get -o DPkg::Lock::Timeout=600 update -qq
    # shellcheck disable=SC2068  # a list of package names, split on purpose
    apt-get -o DPkg::Lock::Timeout=600 install -y -qq --no-install-recommends $@ >/dev/null
}

ensure_packages() { apt_install "$(missing_packages images)"; }

test_packages_pid=
start_test_packages() {
    local missing
    missing=$(missing_packages tests)
    [ -n "$missing" ] || return 0
    apt_install "$missing" >"$state_dir/apt-tests.log" 2>&1 &
    test_packages_pid=$!
}

wait_test_packages() {
    [ -n "$test_packages_pid" ] || return 0
    wait "$test_packages_pid" || { tail -20 "$state_dir/apt-tests.log" >&2; die "installing the tests' packages failed"; }
}

# The molecule targets map /dev/loop-control and /dev/loop0-15 (.config/molecule/config.yml,
# for docker_data_loop_size): a mapped device must exist on the machine. Opening a node
# made here makes the kernel create that loop device.
ensure_loop_devices() {
    local i
    [ -e /dev/loop-control ] || die "this machine has no /dev/loop-control (the loop module)"
    for i in $(seq 0 15); do
        [ -e "/dev/loop$i" ] || mknod -m 0660 "/dev/loop$i" b 7 "$i"
    done
}

ensure_docker() {
    ensure_loop_devices
    if docker info >/dev/null 2>&1; then return 0; fi
    mkdir -p "$state_dir"
    log "starting dockerd (log: $state_dir/dockerd.log)"
    # setsid: the daemon must outlive the make process that started it.
    setsid nohup dockerd >"$state_dir/dockerd.log" 2>&1 </dev/null &
    for _ in $(seq 1 60); do
        docker info >/dev/null 2>&1 && return 0
        sleep 1
    done
    tail -20 "$state_dir/dockerd.log" >&2 || true
    die "dockerd did not answer within 60 s"
}

# recipe_hash DIR [EXTRA...]: a hash of every file in DIR plus extra strings.
recipe_hash() {
    local dir=$1; shift
    { (cd "$dir" && find . -type f -print0 | sort -z | xargs -0 sha256sum); printf '%s\n' "$@"; } \
        | sha256sum | cut -c1-16
}

image_hash() { docker image inspect -f "{{ index .Config.Labels \"$recipe_label\" }}" "$1" 2>/dev/null || true; }
image_id() { docker image inspect -f '{{ .Id }}' "$1"; }

# Debian base images by debootstrap, imported (there is no registry to pull from).
ensure_debian() {
    local suite=$1 tag=jhtest/debian:$1
    local want
    want=$(printf 'debootstrap minbase %s %s v2' "$suite" "$debian_mirror" | sha256sum | cut -c1-16)
    [ "$(image_hash "$tag")" = "$want" ] && return 0
    log "building $tag with debootstrap"
    local root
    root=$(mktemp -d /var/tmp/jhtest-rootfs.XXXXXX)
    # mktemp's 0700 would be the image's / (Docker's btrfs driver keeps the root's mode,
    # overlay2 does not): every user but root could then run nothing in the image.
    chmod 0755 "$root"
    debootstrap --variant=minbase "$suite" "$root" "$debian_mirror" >"$state_dir/debootstrap-$suite.log" 2>&1 \
        || { tail -20 "$state_dir/debootstrap-$suite.log" >&2; rm -rf "$root"; die "debootstrap $suite failed"; }
    rm -rf "$root"/var/cache/apt/archives/*.deb "$root"/var/lib/apt/lists/*
    tar -C "$root" -c . | docker import \
        --change "LABEL $recipe_label=$want" --change 'CMD ["/bin/bash"]' - "$tag" >/dev/null
    rm -rf "$root"
}

# build TAG RECIPE_DIR [--build-arg ...]: docker build when the recipe or its base changed.
build() {
    local tag=$1 dir=$here/images/$2; shift 2
    local base want
    base=$(sed -n 's/^FROM[[:space:]]\+\([^[:space:]]*\).*/\1/p' "$dir/Dockerfile" | head -1)
    # The base is named through ARG in some recipes: resolve it from the build args.
    for arg in "$@"; do
        case $arg in BASE=*) base=${arg#BASE=} ;; esac
    done
    local upstream=()
    if [ -f "$dir/docker-stacks-files" ]; then
        [ -d "$docker_stacks" ] || die "$docker_stacks is missing: the upstream docker-stacks files are needed"
        mapfile -t upstream < <(sed 's|^|'"$docker_stacks"'/|' "$dir/docker-stacks-files")
    fi
    want=$(recipe_hash "$dir" "$(image_id "$base")" "$(sha256sum <"$ca_bundle")" "$@" \
        "$( ((${#upstream[@]})) && sha256sum "${upstream[@]}")")
    [ "$(image_hash "$tag")" = "$want" ] && return 0
    log "building $tag"
    local ctx
    ctx=$(mktemp -d /var/tmp/jhtest-ctx.XXXXXX)
    cp -a "$dir/." "$ctx/"
    # Upstream files go in unchanged, modes included (they are executables).
    ((${#upstream[@]})) && cp --preserve=mode "${upstream[@]}" "$ctx/"
    # The machine's CA bundle goes into images that reach PyPI or git over HTTPS:
    # this network (like many campuses) re-signs TLS, and verification stays on.
    cp "$ca_bundle" "$ctx/extra-ca.crt"
    local args=()
    for arg in "$@"; do args+=(--build-arg "$arg"); done
    if ! DOCKER_BUILDKIT=0 docker build -q --label "$recipe_label=$want" "${args[@]}" -t "$tag" "$ctx" \
            >"$state_dir/build-${tag//[\/:]/_}.log" 2>&1; then
        tail -30 "$state_dir/build-${tag//[\/:]/_}.log" >&2
        rm -rf "$ctx"
        die "docker build of $tag failed"
    fi
    rm -rf "$ctx"
}

# The images in three chains built side by side (most of a build waits on Debian's archive
# or PyPI): on a machine without them (2 cores), 370 s one after another, 215 s side by side.
chain_trixie() {
    ensure_debian trixie
    build jhtest/server:trixie server BASE=jhtest/debian:trixie
    build jhtest/server:trixie-site server-site BASE=jhtest/server:trixie
}
chain_bookworm_server() {
    demo_server
    build jhtest/server:bookworm-site server-site BASE=jhtest/server:bookworm
}
chain_singleuser() {
    demo_singleuser
    build jhtest/singleuser:hub5 singleuser-hub5 BASE=jhtest/singleuser:minimal
}
# What `make demo` needs, and no more: the bookworm target, the two images its inventory
# offers (and the one they build on), the registry they are pulled from.
demo_singleuser() {
    build jhtest/singleuser:vanilla singleuser BASE=jhtest/debian:bookworm JUPYTERHUB_VERSION="$hub_version"
    build jhtest/singleuser:minimal singleuser-campus BASE=jhtest/singleuser:vanilla
    build jhtest/singleuser:scipy singleuser-scipy BASE=jhtest/singleuser:minimal
    build jhtest/registry:latest registry BASE=jhtest/debian:bookworm
}
demo_server() { build jhtest/server:bookworm server BASE=jhtest/debian:bookworm; }
ensure_demo_images() {
    ensure_debian bookworm
    side_by_side demo_server demo_singleuser
}

# side_by_side FUNCTION...: each function in a subshell of its own; fails when any failed
# (each says why on stderr), after all have ended.
side_by_side() {
    local pids=() failed=0 pid
    for f in "$@"; do "$f" & pids+=($!); done
    for pid in "${pids[@]}"; do wait "$pid" || failed=1; done
    [ "$failed" -eq 0 ] || die "an image build failed (above)"
}

ensure_images() {
    side_by_side chain_trixie chain_bookworm
    # Builds this script superseded (untagged now) only take disk space.
    docker image prune --force --filter "label=$recipe_label" >/dev/null
}
chain_bookworm() {
    ensure_debian bookworm
    side_by_side chain_bookworm_server chain_singleuser
}

ensure_registry() {
    docker network inspect "$network_name" >/dev/null 2>&1 \
        || docker network create "$network_name" >/dev/null
    local want have
    want=$(image_id jhtest/registry:latest)
    have=$(docker inspect -f '{{ .Image }}' "$registry_name" 2>/dev/null || true)
    if [ "$have" != "$want" ]; then
        docker rm -f "$registry_name" >/dev/null 2>&1 || true
        log "starting $registry_name on 127.0.0.1:$registry_port"
        docker run -d --name "$registry_name" --network "$network_name" --restart unless-stopped \
            -p "127.0.0.1:$registry_port:5000" jhtest/registry:latest >/dev/null
    elif [ "$(docker inspect -f '{{ .State.Running }}' "$registry_name")" != true ]; then
        docker start "$registry_name" >/dev/null
    fi
    for _ in $(seq 1 30); do
        curl -fsS "http://127.0.0.1:$registry_port/v2/" >/dev/null 2>&1 && break
        sleep 1
    done
    curl -fsS "http://127.0.0.1:$registry_port/v2/" >/dev/null || die "registry did not answer"
    # Push what the registry lacks or holds in an older build (docker is localhost-insecure).
    local name local_id remote_tag
    for name in minimal scipy hub5 vanilla; do
        # The demo's environment builds no hub5.
        docker image inspect "jhtest/singleuser:$name" >/dev/null 2>&1 || continue
        local_id=$(image_id "jhtest/singleuser:$name")
        remote_tag=127.0.0.1:$registry_port/jhtest/singleuser:$name
        if [ "$(cat "$state_dir/pushed-$name" 2>/dev/null)" != "$local_id" ] \
                || ! curl -fsS -o /dev/null "http://127.0.0.1:$registry_port/v2/jhtest/singleuser/manifests/$name"; then
            log "pushing $remote_tag"
            docker tag "jhtest/singleuser:$name" "$remote_tag"
            docker push -q "$remote_tag" >/dev/null
            echo "$local_id" >"$state_dir/pushed-$name"
        fi
    done
}

status() {
    docker info --format 'docker {{ .ServerVersion }} ({{ .Driver }})'
    docker image ls --filter "label=$recipe_label" --format '{{ .Repository }}:{{ .Tag }}  {{ .Size }}'
    docker ps --filter "name=$registry_name" --format '{{ .Names }}  {{ .Status }}'
}

main() {
    mkdir -p "$state_dir"
    case ${1:-up} in
        up) ensure_packages; ensure_docker; start_test_packages; ensure_images; ensure_registry
            wait_test_packages; status ;;
        docker) ensure_packages; ensure_docker ;;
        demo) ensure_packages; ensure_docker; ensure_demo_images; ensure_registry; status ;;
        images) ensure_packages; ensure_docker; start_test_packages; ensure_images; wait_test_packages ;;
        unit) apt_install "$(missing_packages unit)" ;;
        status) status ;;
        *) die "usage: $0 up|demo|docker|images|unit|status" ;;
    esac
}

main "$@"

#!/usr/bin/env bash
# Build libvirt 9.0 (Debian 12's source package) with only the Cloud
# Hypervisor ("ch") driver, the remote driver and the daemons, into a cache
# outside the repository.  Used by s2vm's libvirt integration test.
#
# Usage: tools/libvirt/build.sh [--print-prefix]
#   (no option)     build if needed; progress on stderr, then the install
#                   prefix alone on stdout:  prefix=$(tools/libvirt/build.sh)
#   --print-prefix  never build: print the prefix and exit 0 if an up-to-date
#                   build is there, else exit 1.
#
# Cache: ${S2VM_CACHE:-/var/cache/s2vm}/libvirt-9.0.0/{src,build,prefix,stamp}
# A second run with the same source version and configure options only prints
# the prefix.  Exit 77 (one line on stderr) when the machine cannot provide
# something the build needs (no deb-src reachable, no root for apt, ...).
set -euo pipefail

UPSTREAM_VERSION=9.0.0          # Debian 12 (bookworm) ships libvirt 9.0.0-4+deb12uN
CODENAME=bookworm
SOURCES_FILE=/etc/apt/sources.list.d/s2vm-deb-src.sources

# Debian packages a ch-only build needs (found by trying on a Debian 12 image).
# dpkg-dev and xz-utils unpack the source package; rpcsvc-proto gives rpcgen;
# perl, python3, xmllint (libxml2-utils) and xsltproc are required programs of
# libvirt's meson.build even with docs off.
BUILD_DEPS=(
    meson ninja-build gcc libc6-dev pkg-config dpkg-dev xz-utils
    perl python3 libxml2-utils xsltproc rpcsvc-proto
    libglib2.0-dev libgnutls28-dev libxml2-dev libtirpc-dev
    libcurl4-gnutls-dev libyajl-dev
)

# Everything optional is off (auto_features=disabled); the ch driver needs
# libvirtd (which needs the remote driver), yajl and curl.
MESON_OPTIONS=(
    -Dauto_features=disabled
    -Ddriver_ch=enabled
    -Ddriver_libvirtd=enabled
    -Ddriver_remote=enabled
    -Dyajl=enabled
    -Dcurl=enabled
    -Ddriver_qemu=disabled
    -Ddocs=disabled
    -Dtests=disabled
    -Dbuildtype=release
    -Dgit_werror=disabled
)

CACHE_DIR="${S2VM_CACHE:-/var/cache/s2vm}/libvirt-${UPSTREAM_VERSION}"
PREFIX="$CACHE_DIR/prefix"
STAMP="$CACHE_DIR/stamp"
WANT_STAMP="upstream=${UPSTREAM_VERSION}
options=${MESON_OPTIONS[*]}"

say()  { echo "libvirt: $*" >&2; }
skip() { echo "libvirt: cannot build: $*" >&2; exit 77; }

up_to_date() {
    [[ -x "$PREFIX/bin/virsh" && -f "$STAMP" ]] || return 1
    [[ "$(grep -E '^(upstream|options)=' "$STAMP")" == "$WANT_STAMP" ]]
}

case "${1:-}" in
    "") ;;
    --print-prefix)
        if up_to_date; then echo "$PREFIX"; exit 0; fi
        echo "libvirt: no up-to-date build in $PREFIX; run $0" >&2
        exit 1 ;;
    -h|--help) sed -n '2,15p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "usage: $0 [--print-prefix]" >&2; exit 2 ;;
esac

# Fast path, before anything else (no apt, no lock).
if up_to_date; then echo "$PREFIX"; exit 0; fi

mkdir -p "$CACHE_DIR" 2>/dev/null || skip "cannot create cache dir $CACHE_DIR (set S2VM_CACHE)"
exec 9>"$CACHE_DIR/.lock"
flock 9                          # one build at a time; a waiter then re-checks
if up_to_date; then echo "$PREFIX"; exit 0; fi

[[ "$(uname -m)" == x86_64 || "$(uname -m)" == aarch64 ]] ||
    skip "libvirt's ch driver builds only on x86_64 and aarch64, this is $(uname -m)"
# shellcheck disable=SC1091
. /etc/os-release
[[ "${VERSION_CODENAME:-}" == "$CODENAME" ]] ||
    skip "libvirt ${UPSTREAM_VERSION} is Debian 12's ($CODENAME) source package; this machine is ${PRETTY_NAME:-unknown}"
command -v apt-get >/dev/null || skip "no apt-get on this machine"

export DEBIAN_FRONTEND=noninteractive
APT_UPDATED=0
apt_update() {
    [[ $APT_UPDATED == 1 ]] && return 0
    say "apt-get update"
    if ! apt-get update -qq >"$CACHE_DIR/apt-update.log" 2>&1 ||
        grep -qE '^(W|E): (Failed to fetch|Some index files failed)' "$CACHE_DIR/apt-update.log"; then
        skip "apt-get update cannot reach the Debian mirror ($(apt_err "$CACHE_DIR/apt-update.log"))"
    fi
    APT_UPDATED=1
}
apt_err() {   # the most telling line of an apt log: first E:, else first W:, else the last line
    { grep -m1 '^E:' "$1" || grep -m1 '^W:' "$1" || tail -n1 "$1"; } | cut -c1-200
}
need_root() { [[ $(id -u) == 0 ]] || skip "$1 needs root (run as root, or build once as root)"; }

# --- deb-src entry ---------------------------------------------------------
# Reuse the URIs this machine already uses for Debian (a mirror or proxy may
# stand in for deb.debian.org); fall back to deb.debian.org.
debian_uri() {   # $1 = suite to look for (bookworm | bookworm-security)
    local f uri
    for f in /etc/apt/sources.list.d/*.sources; do
        [[ -f $f && $f != "$SOURCES_FILE" ]] || continue
        uri=$(awk -v suite="$1" '
            function flush() { if (t ~ /(^| )deb( |$)/ && (" " s " ") ~ (" " suite " ") && u != "") { print u; found = 1; exit } t = s = u = "" }
            /^[ \t]*$/ { flush(); next }
            /^Types:/  { sub(/^Types:[ \t]*/, ""); t = $0 }
            /^Suites:/ { sub(/^Suites:[ \t]*/, ""); s = $0 }
            /^URIs:/   { sub(/^URIs:[ \t]*/, ""); split($0, a, /[ \t]+/); u = a[1] }
            END { if (!found) flush() }' "$f")
        [[ -n $uri ]] && { echo "$uri"; return; }
    done
    for f in /etc/apt/sources.list /etc/apt/sources.list.d/*.list; do
        [[ -f $f ]] || continue
        uri=$(awk -v suite="$1" '$1 == "deb" { i = 2; if ($2 ~ /^\[/) { while ($i !~ /\]$/) i++; i++ } if ($(i+1) == suite) { print $i; exit } }' "$f")
        [[ -n $uri ]] && { echo "$uri"; return; }
    done
    if [[ $1 == *-security ]]; then echo http://deb.debian.org/debian-security; else echo http://deb.debian.org/debian; fi
}

if [[ ! -f $SOURCES_FILE ]] && ! apt-cache showsrc libvirt 2>/dev/null | grep -q "^Version: ${UPSTREAM_VERSION}-"; then
    need_root "adding $SOURCES_FILE"
    main_uri=$(debian_uri "$CODENAME")
    sec_uri=$(debian_uri "$CODENAME-security")
    keyring=/usr/share/keyrings/debian-archive-keyring.gpg
    signed=""; [[ -f $keyring ]] && signed="Signed-By: $keyring"
    say "adding deb-src entries ($main_uri, $sec_uri) in $SOURCES_FILE"
    cat >"$SOURCES_FILE" <<EOF
# Added by s2vm tools/libvirt/build.sh: source packages for building libvirt.
Types: deb-src
URIs: $main_uri
Suites: $CODENAME $CODENAME-updates
Components: main
$signed

Types: deb-src
URIs: $sec_uri
Suites: $CODENAME-security
Components: main
$signed
EOF
    apt_update
fi

# --- build dependencies ----------------------------------------------------
missing=()
for p in "${BUILD_DEPS[@]}"; do
    dpkg-query -W -f='${db:Status-Status}\n' "$p" 2>/dev/null | grep -qx installed || missing+=("$p")
done
if ((${#missing[@]})); then
    need_root "installing ${missing[*]}"
    say "installing build dependencies: ${missing[*]}"
    if ! apt-get install -y -qq --no-install-recommends "${missing[@]}" >"$CACHE_DIR/apt-install.log" 2>&1; then
        apt_update
        apt-get install -y -qq --no-install-recommends "${missing[@]}" >"$CACHE_DIR/apt-install.log" 2>&1 ||
            skip "apt-get install ${missing[*]} failed ($(apt_err "$CACHE_DIR/apt-install.log"))"
    fi
fi

# --- source ----------------------------------------------------------------
src_version() {   # highest libvirt source version of the wanted upstream release
    apt-cache showsrc libvirt 2>/dev/null | sed -n "s/^Version: \(${UPSTREAM_VERSION//./\\.}-.*\)/\1/p" |
        sort -V | tail -n1
}
SRC_DIR="$CACHE_DIR/src/libvirt-${UPSTREAM_VERSION}"
have_src=""
[[ -f "$CACHE_DIR/src/version" && -f "$SRC_DIR/meson.build" ]] && have_src=$(cat "$CACHE_DIR/src/version")
if [[ -z $have_src ]]; then
    deb_version=$(src_version)
    if [[ -z $deb_version ]]; then
        need_root "apt-get update"
        apt_update
        deb_version=$(src_version)
    fi
    [[ -n $deb_version ]] ||
        skip "apt has no libvirt ${UPSTREAM_VERSION} source package (deb-src entries in $SOURCES_FILE give: $(apt-cache showsrc libvirt 2>/dev/null | sed -n 's/^Version: //p' | tr '\n' ' ')none)"
    say "fetching source (libvirt $deb_version, about 9 MB)"
    rm -rf "$CACHE_DIR/src"; mkdir -p "$CACHE_DIR/src"
    if ! (cd "$CACHE_DIR/src" && apt-get source -qq --only-source "libvirt=$deb_version") >"$CACHE_DIR/apt-source.log" 2>&1; then
        skip "apt-get source libvirt=$deb_version failed ($(apt_err "$CACHE_DIR/apt-source.log"))"
    fi
    [[ -f "$SRC_DIR/meson.build" ]] || skip "apt-get source did not unpack $SRC_DIR"
    echo "$deb_version" >"$CACHE_DIR/src/version"
    have_src=$deb_version
fi

# --- configure, build, install -----------------------------------------------
BUILD_DIR="$CACHE_DIR/build"
LOG="$CACHE_DIR/build.log"
rm -rf "$BUILD_DIR" "$PREFIX" "$STAMP"
say "configuring (log: $LOG)"
if ! meson setup "$BUILD_DIR" "$SRC_DIR" --prefix="$PREFIX" "${MESON_OPTIONS[@]}" >"$LOG" 2>&1; then
    tail -n 30 "$LOG" >&2
    echo "libvirt: meson setup failed, see $LOG" >&2
    exit 1
fi

say "building (about 3 min on 2 cores)"
start=$SECONDS
ninja -C "$BUILD_DIR" >>"$LOG" 2>&1 &
ninja_pid=$!
trap 'kill "$ninja_pid" 2>/dev/null || true' EXIT
last=$SECONDS
while kill -0 "$ninja_pid" 2>/dev/null; do
    sleep 5
    if ((SECONDS - last >= 120)); then
        last=$SECONDS
        say "still building, $(grep -oE '^\[[0-9]+/[0-9]+\]' "$LOG" | tail -n1) after $(((SECONDS - start) / 60)) min"
    fi
done
if ! wait "$ninja_pid"; then
    trap - EXIT
    grep -E -A12 '^FAILED' "$LOG" | head -n 40 >&2 || tail -n 30 "$LOG" >&2
    echo "libvirt: build failed, see $LOG" >&2
    exit 1
fi
trap - EXIT
say "built in $((SECONDS - start)) s; installing into $PREFIX"
if ! ninja -C "$BUILD_DIR" install >>"$LOG" 2>&1; then
    tail -n 30 "$LOG" >&2
    echo "libvirt: install failed, see $LOG" >&2
    exit 1
fi
[[ -x "$PREFIX/bin/virsh" ]] || { echo "libvirt: install gave no $PREFIX/bin/virsh" >&2; exit 1; }

printf '%s\ndebian=%s\nbuilt=%s\n' "$WANT_STAMP" "$have_src" "$(date -u +%FT%TZ)" >"$STAMP"
say "ready in $PREFIX"
echo "$PREFIX"

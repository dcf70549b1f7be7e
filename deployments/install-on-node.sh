#!/bin/sh
# Install fpga-crihook on a node, or remove it.
#
# Usage: install-on-node.sh [install|uninstall]
#
# The init container of the intel-fpga-crihook DaemonSet runs this with the
# node's /opt/intel and /etc/containers/oci/hooks.d mounted under $NODE_ROOT.
# Run directly on a node with NODE_ROOT=/.
#
# HOOK_MODE says how the container runtime is to run the hook:
#   hooks.d    (default) CRI-O and podman read the hooks.d file
#   intel-cdi  Intel's FPGA device plugin names the hook in its CDI spec
#              (containerd 1.7+, CRI-O): the drop-in goes where that spec
#              points, and the hooks.d file is removed, since with both the
#              hook would run twice for a CRI-O container
#
# What lands on the node:
#   /opt/intel/fpga-crihook.d/<release>/        the payload (venv + interpreter)
#   /opt/intel/fpga-crihook -> fpga-crihook.d/<release>
#   hooks.d:   /etc/containers/oci/hooks.d/intel-fpga-crihook.json
#   intel-cdi: /opt/intel/fpga-sw/intel-fpga-crihook -> ../fpga-crihook/bin/intel-fpga-crihook
#              (replacing whatever was there, e.g. Intel's own hook: do not also
#              deploy Intel's FPGA init container, which would put its own back)
#
# A container starting during an install runs either the old hook or the new
# one, never a half-copied payload. A directory cannot be renamed over a
# non-empty one, so the payload is copied into a new release directory and the
# symlink that the hooks.d file's path goes through is replaced with rename(2).
# The hooks.d file is written under a temporary name that CRI-O ignores (it
# reads only *.json) and renamed into place after the payload, so it never
# names a program that is not there. Running it again installs the payload
# afresh, removes the releases before it and leaves the same state. Beyond
# POSIX it needs mv -T and mktemp, which GNU coreutils and BusyBox both have.
set -eu

NODE_ROOT=${NODE_ROOT:-/host}
PAYLOAD_DIR=${PAYLOAD_DIR:-/opt/intel/fpga-crihook}
HOOK_JSON=${HOOK_JSON:-/usr/local/share/fpga-crihook/intel-fpga-crihook.json}
HOOK_MODE=${HOOK_MODE:-hooks.d}

NAME=fpga-crihook
HOOK_FILE_NAME=intel-fpga-crihook.json
DROP_IN_NAME=intel-fpga-crihook
# Relative, so that it resolves on the node and under $NODE_ROOT alike.
DROP_IN_TARGET=../$NAME/bin/$DROP_IN_NAME

install_dir=${NODE_ROOT%/}/opt/intel
current=$install_dir/$NAME
releases=$install_dir/$NAME.d
hooks_dir=${NODE_ROOT%/}/etc/containers/oci/hooks.d
hook_file=$hooks_dir/$HOOK_FILE_NAME
drop_in_dir=$install_dir/fpga-sw
drop_in=$drop_in_dir/$DROP_IN_NAME

# Temporary paths, removed on exit if a step failed before renaming them.
staging=
link_tmp=
hook_tmp=
drop_in_tmp=

cleanup() {
    for leftover in "$staging" "$link_tmp" "$hook_tmp" "$drop_in_tmp"; do
        if [ -n "$leftover" ]; then
            rm -rf "$leftover"
        fi
    done
}
trap cleanup EXIT
trap 'exit 1' HUP INT TERM

log() {
    echo "$NAME installer: $*"
}

die() {
    echo "$NAME installer: error: $*" >&2
    exit 1
}

check_sources() {
    [ -x "$PAYLOAD_DIR/bin/$NAME" ] \
        || die "no executable $PAYLOAD_DIR/bin/$NAME: PAYLOAD_DIR must name the payload"
    case $HOOK_MODE in
        hooks.d)
            [ -f "$HOOK_JSON" ] || die "no hooks.d file at $HOOK_JSON: HOOK_JSON must name it" ;;
        intel-cdi)
            [ -x "$PAYLOAD_DIR/bin/$DROP_IN_NAME" ] \
                || die "no executable $PAYLOAD_DIR/bin/$DROP_IN_NAME: the payload has no drop-in" ;;
        *) die "unknown HOOK_MODE '$HOOK_MODE': expected hooks.d or intel-cdi" ;;
    esac
}

# A real directory at $current (an install by hand) cannot be replaced
# atomically: move it among the releases once, so it is removed like one.
adopt_plain_directory() {
    if [ -d "$current" ] && [ ! -L "$current" ]; then
        rm -rf "$releases/adopted"
        mv -T "$current" "$releases/adopted"
        log "moved the existing directory $current aside"
    elif [ -e "$current" ] && [ ! -L "$current" ]; then
        die "$current exists and is neither a directory nor a symlink: remove it"
    fi
}

install_payload() {
    staging=$(mktemp -d "$releases/.staging.XXXXXX")
    chmod 0755 "$staging"
    cp -RPp "$PAYLOAD_DIR/." "$staging/"
    release=$(date -u +%Y%m%dT%H%M%SZ).${staging##*.staging.}
    mv -T "$staging" "$releases/$release"
    staging=

    # Fixed temporary names: a run killed before its cleanup leaves nothing
    # that blocks the next one.
    link_tmp=$install_dir/.$NAME.link
    rm -f "$link_tmp"
    ln -s "$NAME.d/$release" "$link_tmp"
    mv -T "$link_tmp" "$current"
    link_tmp=
    log "installed $PAYLOAD_DIR as $releases/$release, linked from $current"
}

# Everything in $releases but the release just linked: earlier installs and
# staging copies that an interrupted run left behind.
remove_old_releases() {
    for old in "$releases"/* "$releases"/.staging.*; do
        if [ -e "$old" ] && [ "$old" != "$releases/$release" ]; then
            rm -rf "$old"
            log "removed old release $old"
        fi
    done
}

install_hook_file() {
    hook_tmp=$hooks_dir/.$HOOK_FILE_NAME.tmp
    rm -f "$hook_tmp"
    if cmp -s "$HOOK_JSON" "$hook_file"; then
        log "$hook_file is up to date"
        return
    fi
    cp "$HOOK_JSON" "$hook_tmp"
    chmod 0644 "$hook_tmp"
    mv -f "$hook_tmp" "$hook_file"
    hook_tmp=
    log "wrote $hook_file"
}

# The drop-in is a symlink into the current release, placed with one rename.
install_drop_in() {
    mkdir -p "$drop_in_dir"
    if [ -L "$drop_in" ] && [ "$(readlink "$drop_in")" = "$DROP_IN_TARGET" ]; then
        log "$drop_in is up to date"
        return
    fi
    if [ -e "$drop_in" ] || [ -L "$drop_in" ]; then
        log "replacing $drop_in, which was not fpga-crihook's"
    fi
    drop_in_tmp=$drop_in_dir/.$DROP_IN_NAME.link
    rm -f "$drop_in_tmp"
    ln -s "$DROP_IN_TARGET" "$drop_in_tmp"
    mv -T "$drop_in_tmp" "$drop_in"
    drop_in_tmp=
    log "linked $drop_in to $DROP_IN_TARGET"
}

# Only our own link is removed: a program someone else put there stays.
remove_drop_in() {
    if [ -L "$drop_in" ] && [ "$(readlink "$drop_in")" = "$DROP_IN_TARGET" ]; then
        rm -f "$drop_in"
        log "removed $drop_in"
    fi
}

remove_hook_file() {
    if [ -e "$hook_file" ]; then
        rm -f "$hook_file"
        log "removed $hook_file (HOOK_MODE=$HOOK_MODE: the CDI spec runs the hook)"
    fi
}

install() {
    check_sources
    mkdir -p "$releases" "$hooks_dir"
    adopt_plain_directory
    install_payload
    remove_old_releases
    # Put the new way in place before taking the old one away.
    if [ "$HOOK_MODE" = intel-cdi ]; then
        install_drop_in
        remove_hook_file
    else
        install_hook_file
        remove_drop_in
    fi
    log "done"
}

# The hooks.d file and the drop-in go first, so the runtime stops calling the
# hook before the program disappears.
uninstall() {
    remove_drop_in
    for path in "$hook_file" "$current" "$releases"; do
        if [ -e "$path" ] || [ -L "$path" ]; then
            rm -rf "$path"
            log "removed $path"
        fi
    done
    log "done"
}

case ${1:-install} in
    install) install ;;
    uninstall) uninstall ;;
    *) die "unknown command '$1': expected install or uninstall" ;;
esac

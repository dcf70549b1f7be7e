#!/bin/sh
# Install fpga-crihook on a node, or remove it: the entrypoint of the image
# built from deployments/Containerfile.
#
# Usage: install-on-node.sh [install|uninstall]
#
# Where it installs, by what it is given:
#
#   NODE_ROOT    the node's root: its /opt/intel and hooks directories, and
#                (read-only) /etc/crio. The intel-fpga-crihook DaemonSet
#                mounts them under /host; on a node itself, NODE_ROOT=/.
#   FPGA_SW_DIR  only the node's /opt/intel/fpga-sw, where Intel's FPGA device
#                plugin's CDI spec names the hook: this image as the init
#                container of Intel's plugin DaemonSet, which mounts that
#                directory alone, at the same path, and sets no env.
#
# With neither set, what is there says which: /host/opt/intel for the first,
# else /opt/intel/fpga-sw for the second (the image has neither of its own); a
# run that finds both, or neither, fails.
#
# Under NODE_ROOT, HOOK_MODE says how the container runtime is to run the hook:
#   hooks.d    (default) CRI-O and podman read the hooks.d file
#   intel-cdi  Intel's FPGA device plugin names the hook in its CDI spec
#              (containerd 1.7+, CRI-O): the drop-in goes where that spec
#              points, and the hooks.d file is removed, since with both the
#              hook would run twice for a CRI-O container
# In FPGA_SW_DIR it can only be the CDI spec (HOOK_MODE unset or intel-cdi).
#
# What lands on the node:
#   NODE_ROOT:
#   /opt/intel/fpga-crihook.d/<release>/        the payload (interpreter + package),
#                                               and the release before it (below)
#   /opt/intel/fpga-crihook -> fpga-crihook.d/<release>
#   hooks.d:   <dir>/intel-fpga-crihook.json, <dir> the first directory of
#              CRI-O's hooks_dir that can be written (/etc/crio/crio.conf, then
#              /etc/crio/crio.conf.d, the last setting winning, as CRI-O reads
#              them); with no CRI-O config /usr/share/containers/oci/hooks.d,
#              CRI-O's default, which podman reads too. A copy of the file in
#              any other hooks directory (an older installer's
#              /etc/containers/oci/hooks.d) is removed: podman would run both,
#              and CRI-O lets a file in a later directory replace one of the same
#              name in an earlier one.
#   intel-cdi: /opt/intel/fpga-sw/intel-fpga-crihook -> ../fpga-crihook/bin/intel-fpga-crihook
#              (replacing whatever was there, e.g. Intel's own hook: do not also
#              deploy Intel's FPGA init container, which would put its own back)
#   FPGA_SW_DIR (/opt/intel/fpga-sw):
#   fpga-crihook.d/<release>/                   the payload, and the release before it
#   fpga-crihook -> fpga-crihook.d/<release>
#   intel-fpga-crihook   a short sh script running fpga-crihook/bin/intel-fpga-crihook
#              beside it. A file, not a symlink: Intel's init container copies
#              its hook there with toybox's cp -a, which writes through a symlink
#              into whatever it names; a file it simply overwrites. Nothing else
#              in the directory is touched.
#
# CRI-O's config is TOML, which sh cannot read reliably: the payload's own
# Python reads it, with the module `fpga-crihook check` uses (python -m
# fpga_crihook.engineconfig), run from the installed payload (or, to
# uninstall with none installed, from $PAYLOAD_DIR). Beyond the config files,
# CRI-O takes hooks_dir from its --hooks-dir option, which this cannot see.
#
# A container starting during an install runs either the old hook or the new
# one, never a half-copied payload. A directory cannot be renamed over a
# non-empty one, so the payload is copied into a new release directory and the
# symlink that the hooks.d file's path and the drop-in go through is replaced
# with rename(2). A hook runs entirely from the release it started in (its
# launcher runs Python from the release's own directory, not through the link),
# never a mix of two. So the release the link named before the swap stays, for
# hooks that started on it and are still running (each within its deadline);
# the next install removes it, with any older one. The hooks.d file and the
# drop-in file are written under temporary names that the runtimes ignore and
# renamed into place after the payload, so they never name a program that is
# not there. Running it again installs the payload afresh and leaves the same
# state: the new release and the one before it. Uninstall removes every
# release, a hook still running from one included. Nothing is written outside
# the directories named above (the image's root file system is read-only).
# Beyond POSIX it needs mv -T and mktemp, which GNU coreutils and BusyBox both
# have.
set -eu

# Started with no env at all (as Intel's DaemonSet may), there is no PATH either.
PATH=${PATH:-/usr/sbin:/usr/bin:/sbin:/bin}
NODE_ROOT=${NODE_ROOT:-}
FPGA_SW_DIR=${FPGA_SW_DIR:-}
# Where the image holds the payload and the hooks.d file.
PAYLOAD_DIR=${PAYLOAD_DIR:-/usr/local/lib/fpga-crihook}
HOOK_JSON=${HOOK_JSON:-/usr/local/share/fpga-crihook/intel-fpga-crihook.json}
HOOK_MODE=${HOOK_MODE:-}

# Where the intel-fpga-crihook DaemonSet mounts the node, and where Intel's
# FPGA plugin DaemonSet mounts the node's /opt/intel/fpga-sw.
DAEMONSET_NODE_ROOT=/host
INTEL_FPGA_SW=/opt/intel/fpga-sw

NAME=fpga-crihook
HOOK_FILE_NAME=intel-fpga-crihook.json
DROP_IN_NAME=intel-fpga-crihook
# Relative, so that it resolves on the node and under $NODE_ROOT alike.
DROP_IN_TARGET=../$NAME/bin/$DROP_IN_NAME
# The second line of the drop-in file FPGA_SW_DIR gets: how uninstall knows it.
DROP_IN_MARKER="# $NAME's drop-in for the hook Intel's FPGA device plugin names in its CDI spec:"
CRIO_DEFAULT_HOOKS_DIR=/usr/share/containers/oci/hooks.d
# Where a hooks.d file of ours may be from an earlier install: the directories
# podman, CRI-O and OpenShift's CRI-O read, beside CRI-O's own hooks_dir.
KNOWN_HOOKS_DIRS="/etc/containers/oci/hooks.d
/run/containers/oci/hooks.d
$CRIO_DEFAULT_HOOKS_DIR"

# Set by choose_target: node (NODE_ROOT) or fpga-sw (FPGA_SW_DIR).
target=

# Set by read_crio_hooks_dirs: CRI-O's hooks_dir (node paths, one a line), and why.
crio_hooks_dirs=
crio_hooks_source=
hooks_dir=

# Set by install_payload: the release it linked, and the one the link named before.
release=
previous=

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

# Fills target from NODE_ROOT or FPGA_SW_DIR, or else from what is mounted.
choose_target() {
    if [ -n "$NODE_ROOT" ] && [ -n "$FPGA_SW_DIR" ]; then
        die "NODE_ROOT and FPGA_SW_DIR are both set: set the one to install into"
    elif [ -n "$NODE_ROOT" ]; then
        target=node
    elif [ -n "$FPGA_SW_DIR" ]; then
        target=fpga-sw
    elif [ -d "$DAEMONSET_NODE_ROOT/opt/intel" ] && [ -d "$INTEL_FPGA_SW" ]; then
        die "both $DAEMONSET_NODE_ROOT/opt/intel and $INTEL_FPGA_SW are mounted: cannot tell \
which to install into (set NODE_ROOT or FPGA_SW_DIR)"
    elif [ -d "$DAEMONSET_NODE_ROOT/opt/intel" ]; then
        target=node
        NODE_ROOT=$DAEMONSET_NODE_ROOT
        log "installing into the node's root mounted at $NODE_ROOT"
    elif [ -d "$INTEL_FPGA_SW" ]; then
        target=fpga-sw
        FPGA_SW_DIR=$INTEL_FPGA_SW
        log "only $INTEL_FPGA_SW is mounted (Intel's FPGA plugin DaemonSet): installing into it"
    else
        die "neither $DAEMONSET_NODE_ROOT/opt/intel (the intel-fpga-crihook DaemonSet) nor \
$INTEL_FPGA_SW (Intel's FPGA plugin DaemonSet) is mounted: nowhere to install"
    fi
}

# The paths of the chosen target.
set_paths() {
    if [ "$target" = node ]; then
        root=${NODE_ROOT%/}
        install_dir=$root/opt/intel
        drop_in_dir=$install_dir/fpga-sw
        HOOK_MODE=${HOOK_MODE:-hooks.d}
        crio_config=$root/etc/crio/crio.conf
        crio_config_dir=$root/etc/crio/crio.conf.d
    else
        case $HOOK_MODE in
            "" | intel-cdi) ;;
            *) die "HOOK_MODE=$HOOK_MODE needs NODE_ROOT: in $FPGA_SW_DIR alone only \
Intel's CDI spec can run the hook (HOOK_MODE unset or intel-cdi)" ;;
        esac
        install_dir=${FPGA_SW_DIR%/}
        drop_in_dir=$install_dir
    fi
    current=$install_dir/$NAME
    releases=$install_dir/$NAME.d
    drop_in=$drop_in_dir/$DROP_IN_NAME
    # Left in $releases when this installer made $drop_in_dir, which uninstall then removes.
    made_drop_in_dir=$releases/.made-fpga-sw
}

check_sources() {
    [ -x "$PAYLOAD_DIR/bin/$NAME" ] \
        || die "no executable $PAYLOAD_DIR/bin/$NAME: PAYLOAD_DIR must name the payload"
    case $target.$HOOK_MODE in
        node.hooks.d)
            [ -f "$HOOK_JSON" ] || die "no hooks.d file at $HOOK_JSON: HOOK_JSON must name it" ;;
        node.intel-cdi | fpga-sw.*)
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

    # Only a link this installer made names a release to keep.
    if [ -L "$current" ]; then
        previous=$(readlink "$current")
        case $previous in
            "$NAME.d"/*) previous=${previous#"$NAME.d/"} ;;
            *) previous= ;;
        esac
    fi

    # Fixed temporary names: a run killed before its cleanup leaves nothing
    # that blocks the next one.
    link_tmp=$install_dir/.$NAME.link
    rm -f "$link_tmp"
    ln -s "$NAME.d/$release" "$link_tmp"
    mv -T "$link_tmp" "$current"
    link_tmp=
    log "installed $PAYLOAD_DIR as $releases/$release, linked from $current"
}

# Everything in $releases but the release just linked and the one linked
# before it, which hooks that started before the swap still run from: earlier
# installs, and staging copies that an interrupted run left behind.
remove_old_releases() {
    for old in "$releases"/* "$releases"/.staging.*; do
        case $old in
            "$releases/$release") continue ;;
            "$releases/$previous")
                log "kept the previous release $old for hooks still running from it"
                continue ;;
        esac
        if [ -e "$old" ]; then
            rm -rf "$old"
            log "removed old release $old"
        fi
    done
}

# Fills crio_hooks_dirs and crio_hooks_source; with no usable Python (an
# uninstall with nothing installed) only when $1 is "required" does it fail.
read_crio_hooks_dirs() {
    python=
    for candidate in "$current/bin/python3" "$PAYLOAD_DIR/bin/python3"; do
        if [ -x "$candidate" ]; then
            python=$candidate
            break
        fi
    done
    if [ -z "$python" ]; then
        [ "$1" = required ] && die "no Python in $current or $PAYLOAD_DIR to read CRI-O's config"
        log "no Python to read CRI-O's config with: looking only in the usual hooks directories"
        return
    fi
    output=$("$python" -I -m fpga_crihook.engineconfig "$crio_config" "$crio_config_dir") \
        || die "cannot read CRI-O's hooks_dir (CRI-O itself would not start with that config)"
    crio_hooks_source=$(printf '%s\n' "$output" | sed -n 1p)
    crio_hooks_dirs=$(printf '%s\n' "$output" | sed 1d)
}

listed_hooks_dirs() {
    printf '%s\n' "$crio_hooks_dirs" | awk 'NR > 1 { printf ", " } { printf "%s", $0 }'
}

# The first of CRI-O's hooks directories that exists on the node and can be
# written: CRI-O creates the listed ones when it starts, and a read-only one
# (OpenShift's /usr) is skipped. Only CRI-O's default is created here, for a
# node whose CRI-O has no config (or has not run yet).
choose_hooks_dir() {
    read_crio_hooks_dirs required
    if [ "$crio_hooks_dirs" = "$CRIO_DEFAULT_HOOKS_DIR" ] \
        && [ ! -e "$crio_config" ] && [ ! -e "$crio_config_dir" ]; then
        mkdir -p "$root$CRIO_DEFAULT_HOOKS_DIR"
    fi
    log "CRI-O reads hooks.d files from: $(listed_hooks_dirs) ($crio_hooks_source)"
    saved_ifs=$IFS
    IFS='
'
    set -f
    for directory in $crio_hooks_dirs; do
        probe=$root$directory/.$HOOK_FILE_NAME.tmp
        if [ -d "$root$directory" ] && (: > "$probe") 2>/dev/null; then
            rm -f "$probe"
            hooks_dir=$directory
            break
        fi
        log "skipping $directory: not a directory this installer can write to"
    done
    set +f
    IFS=$saved_ifs
    [ -n "$hooks_dir" ] || die "none of CRI-O's hooks directories can be written here: \
$(listed_hooks_dirs) (mount one into the installer, or create it)"
    log "writing the hooks.d file to $hooks_dir: the first of them it can write"
}

install_hook_file() {
    hook_file=$root$hooks_dir/$HOOK_FILE_NAME
    hook_tmp=$root$hooks_dir/.$HOOK_FILE_NAME.tmp
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

# Our hooks.d file in every hooks directory but $1 ("": all of them); $2 says why.
remove_hook_files() {
    keep=$1
    saved_ifs=$IFS
    IFS='
'
    set -f
    for directory in $crio_hooks_dirs $KNOWN_HOOKS_DIRS; do
        old=$root$directory/$HOOK_FILE_NAME
        if [ "$directory" = "$keep" ] || { [ ! -e "$old" ] && [ ! -L "$old" ]; }; then
            continue
        fi
        if rm -f "$old" 2>/dev/null; then
            log "removed $old$2"
        else
            log "warning: cannot remove $old: a runtime reading it runs the hook from it"
        fi
    done
    set +f
    IFS=$saved_ifs
}

# The drop-in is a symlink into the current release, placed with one rename.
install_drop_in() {
    if [ ! -d "$drop_in_dir" ]; then
        mkdir -p "$drop_in_dir"
        : > "$made_drop_in_dir"
    fi
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

# FPGA_SW_DIR's drop-in: a file that runs the launcher in the release $NAME,
# beside it, links to.
drop_in_script() {
    printf '%s\n' \
        '#!/bin/sh' \
        "$DROP_IN_MARKER" \
        "# it runs $NAME/bin/$DROP_IN_NAME beside this file. Written by $NAME's installer." \
        'case $0 in */*) here=${0%/*} ;; *) here=. ;; esac' \
        "exec \"\$here/$NAME/bin/$DROP_IN_NAME\" \"\$@\""
}

is_drop_in_file() {
    [ -f "$drop_in" ] && [ ! -L "$drop_in" ] && [ "$(sed -n 2p "$drop_in")" = "$DROP_IN_MARKER" ]
}

# Written whole under a temporary name, then renamed over whatever is there.
install_drop_in_file() {
    drop_in_tmp=$drop_in_dir/.$DROP_IN_NAME.tmp
    rm -f "$drop_in_tmp"
    drop_in_script > "$drop_in_tmp"
    if [ ! -L "$drop_in" ] && cmp -s "$drop_in_tmp" "$drop_in"; then
        rm -f "$drop_in_tmp"
        drop_in_tmp=
        log "$drop_in is up to date"
        return
    fi
    if [ -e "$drop_in" ] || [ -L "$drop_in" ]; then
        log "replacing $drop_in (Intel's own hook, if its init container put it there)"
    fi
    chmod 0755 "$drop_in_tmp"
    mv -T "$drop_in_tmp" "$drop_in"
    drop_in_tmp=
    log "wrote $drop_in, which runs $NAME/bin/$DROP_IN_NAME beside it"
}

install() {
    check_sources
    mkdir -p "$releases"
    adopt_plain_directory
    install_payload
    remove_old_releases
    # Put the new way in place before taking the old one away.
    case $target.$HOOK_MODE in
        fpga-sw.*)
            install_drop_in_file ;;
        node.intel-cdi)
            install_drop_in
            read_crio_hooks_dirs required
            remove_hook_files "" " (HOOK_MODE=intel-cdi: the CDI spec runs the hook)" ;;
        *)
            choose_hooks_dir
            install_hook_file
            remove_hook_files "$hooks_dir" ": an older copy, which would run the hook a second time"
            remove_drop_in ;;
    esac
    log "done"
}

remove_payload() {
    for path in "$current" "$releases"; do
        if [ -e "$path" ] || [ -L "$path" ]; then
            rm -rf "$path"
            log "removed $path"
        fi
    done
}

# The hooks.d files and the drop-in go first, so the runtime stops calling the
# hook before the program disappears. In FPGA_SW_DIR, whatever else is there
# (Intel's fpga_tool, the directory itself) stays.
uninstall() {
    if [ "$target" = fpga-sw ]; then
        if is_drop_in_file; then
            rm -f "$drop_in"
            log "removed $drop_in"
        fi
    else
        remove_drop_in
        read_crio_hooks_dirs optional
        remove_hook_files "" ""
        if [ -e "$made_drop_in_dir" ] && rmdir "$drop_in_dir" 2>/dev/null; then
            log "removed $drop_in_dir"
        fi
    fi
    remove_payload
    log "done"
}

command=${1:-install}
case $command in
    install | uninstall) ;;
    *) die "unknown command '$1': expected install or uninstall" ;;
esac
choose_target
set_paths
"$command"

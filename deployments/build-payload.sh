#!/bin/sh
# Build the node payload: the Python interpreter the hook runs on, with
# fpga-crihook installed in that interpreter's own site-packages, and a launcher
# for each console script.
#
# Usage: build-payload.sh PROJECT_DIR OUTPUT_DIR
#
# Runs in the builder stage of deployments/Containerfile. The hook must not use
# or touch the node's Python, so the payload carries its interpreter. And it
# must run wherever it is copied: install-on-node.sh puts it under
# /opt/intel/fpga-crihook, or, as the init container of Intel's FPGA plugin
# DaemonSet (which mounts only /opt/intel/fpga-sw), under
# /opt/intel/fpga-sw/fpga-crihook; each is a symlink to a release directory.
# So no path is written into it, and there is no virtual environment (a venv's
# pyvenv.cfg and pip's console scripts name absolute paths):
#
#   OUTPUT/bin/python3.X          copy of the builder's interpreter, RUNPATH
#                                 $ORIGIN/../lib; it finds its standard library
#                                 from its own location
#   OUTPUT/bin/python3 -> python3.X
#   OUTPUT/bin/fpga-crihook       launchers, one per [project.scripts] entry:
#   OUTPUT/bin/intel-fpga-crihook sh scripts that run python3.X beside them,
#                                 isolated (-I), following a symlink to themselves,
#                                 by its real path (see launcher)
#   OUTPUT/lib/                   libpython and the shared libraries the standard
#                                 library's C modules need (libffi, libz, libssl,
#                                 ...), except glibc
#   OUTPUT/lib/python3.X/         standard library, byte-compiled
#   the interpreter's site-packages: the project and its dependencies, where its
#                                 own site module looks (lib/python3.X/site-packages;
#                                 for Debian's Python local/lib/python3.X/dist-packages)
#
# What the node must still provide is glibc, at least as new as the builder
# image's (see deployments/README.md), and /bin/sh for the launchers (readlink
# too, when one is run through a symlink). No symlink in the payload leads out
# of it: one in the base's standard library that does (Debian's
# sitecustomize.py -> /etc/python3.X/sitecustomize.py) would have the hook read
# whatever the node has at that path, so it is replaced by a copy of its
# target.
#
# Needs: python3 with pip >= 22.3 (for --python), ldd, patchelf.

# $ORIGIN in single quotes is for the dynamic loader, not the shell.
# shellcheck disable=SC2016
set -eu

project=${1:?usage: build-payload.sh PROJECT_DIR OUTPUT_DIR}
out=${2:?usage: build-payload.sh PROJECT_DIR OUTPUT_DIR}
python=${PYTHON:-python3}

base=$("$python" -c 'import sys; print(sys.base_prefix)')
version=$("$python" -c 'import sys; print("%d.%d" % sys.version_info[:2])')
executable=$("$python" -c 'import os, sys; print(os.path.realpath(sys.executable))')
stdlib=$out/lib/python$version
interpreter=$out/bin/python$version

# Everything in glibc's own package: the node provides these, and mixing two
# glibcs in one process does not work.
is_glibc() {
    case ${1##*/} in
        ld-linux*.so* | libc.so.* | libm.so.* | libmvec.so.* | libpthread.so.* \
            | libdl.so.* | librt.so.* | libutil.so.* | libresolv.so.* | libanl.so.* \
            | libnss_*.so.* | libBrokenLocale.so.* | libthread_db.so.* \
            | libc_malloc_debug.so.* | linux-vdso.so.*)
            return 0 ;;
    esac
    return 1
}

# Copy the shared libraries an ELF file loads (all of them, as ldd resolves
# the whole tree) into $out/lib, glibc excepted.
bundle_libraries() {
    ldd "$1" | awk '$2 == "=>" && $3 ~ /^\// { print $3 }' | while read -r library; do
        is_glibc "$library" && continue
        target=$out/lib/${library##*/}
        [ -e "$target" ] && continue
        cp -L "$library" "$target"
        patchelf --set-rpath '$ORIGIN' "$target"
        echo "bundled $library"
    done
}

# Where a symlink under $1 leads out of $out, a copy of its target takes its
# place (a link to nothing is removed).
copy_links_leaving() {
    find "$1" -type l | while read -r link; do
        target=$(readlink -f "$link" || true)
        case $target in
            "$out"/*) continue ;;
        esac
        rm -f "$link"
        if [ -n "$target" ] && [ -e "$target" ]; then
            cp -RL "$target" "$link"
            echo "copied $target in place of the link $link"
        else
            echo "removed the link $link to nothing"
        fi
    done
}

# Fails the build if any symlink in the payload still leads out of it.
require_links_inside() {
    leaving=$(find "$out" -type l -exec sh -c '
        for link; do
            case $(readlink -f "$link") in "$0"/*) ;; *) echo "$link" ;; esac
        done' "$out" {} +)
    if [ -n "$leaving" ]; then
        echo "symlinks leading out of the payload: $leaving" >&2
        exit 1
    fi
}

# The launcher for console script $1 = $2:$3 (module:function). A #! line can
# only name an absolute path, so it is a sh script that finds the interpreter
# beside itself. It runs the interpreter by a path with no symlink in it: the
# installer swaps a link to the release directory, and Python reached through
# that link would import the modules it loads late (after reading the state)
# from whichever release the link names by then. So a run stays in the release
# it started in, which the installer keeps until the next install. sys.argv[0]
# is the launcher's own path as reached, through that link: cdi generate names
# the program for later runs by it.
launcher() {
    printf '%s\n' \
        '#!/bin/sh' \
        "# $1: $2:$3 run by the Python beside this file, wherever the payload is." \
        '# -I: no PYTHON* variable, user site directory or working directory changes' \
        '# what it imports; CPython reads these two even then, to find its own files.' \
        'unset PYTHONEXECUTABLE __PYVENV_LAUNCHER__' \
        'case $0 in */*) self=$0 ;; *) self=./$0 ;; esac' \
        'while [ -L "$self" ]; do  # run through a link: find this file' \
        '    link=$(readlink "$self")' \
        '    case $link in /*) self=$link ;; *) self=${self%/*}/$link ;; esac' \
        'done' \
        '# Its directory with every link resolved: the release it is in, which an' \
        '# install does not change under this run.' \
        'bin=$(CDPATH= cd -P -- "${self%/*}" && pwd -P) || exit 1' \
        "exec \"\$bin/python$version\" -I -c 'import sys; sys.argv[0] = sys.argv.pop(1)" \
        "from $2 import $3; $3()' \"\$self\" \"\$@\""
}

# pip's console scripts (and any other script a dependency ships) name the
# build's interpreter in their #! line: the launchers replace them.
write_launchers() {
    scripts=$("$interpreter" -I -c 'import sysconfig; print(sysconfig.get_path("scripts"))')
    for script in "$scripts"/*; do
        case ${script##*/} in python*) ;; *) rm -rf "$script" ;; esac
    done
    [ "$scripts" = "$out/bin" ] || rmdir "$scripts"
    "$interpreter" -I -c '
import sys, tomllib
with open(sys.argv[1], "rb") as file:
    for name, target in tomllib.load(file)["project"]["scripts"].items():
        print(name, *target.split(":"))' "$project/pyproject.toml" |
        while read -r name module function; do
            launcher "$name" "$module" "$function" > "$out/bin/$name"
            chmod 0755 "$out/bin/$name"
        done
}

echo "interpreter: $executable (Python $version, prefix $base)"
rm -rf "$out"
mkdir -p "$out/bin" "$out/lib"

# Resolve the interpreter's libraries (libpython) from the original, whose
# RUNPATH or ld.so.cache entry still points at the base installation.
bundle_libraries "$executable"
cp -L "$executable" "$interpreter"
patchelf --set-rpath '$ORIGIN/../lib' "$interpreter"
ln -s "python$version" "$out/bin/python3"

# The standard library, without what a hook never imports: tests, GUI, the
# static libpython and the build configuration under config-*, and the base
# environment's own site-packages (pip, setuptools). Debian's marker that pip
# must not install into its /usr goes too: this copy is the payload's own.
cp -RP "$base/lib/python$version" "$stdlib"
rm -rf "$stdlib"/config-* "$stdlib/site-packages" "$stdlib/idlelib" "$stdlib/tkinter" \
    "$stdlib/turtledemo" "$stdlib/ensurepip" "$stdlib"/lib-dynload/_test* \
    "$stdlib"/lib-dynload/xx* "$stdlib"/lib-dynload/_tkinter* "$stdlib/EXTERNALLY-MANAGED"
find "$stdlib" -depth -type d \( -name test -o -name tests -o -name idle_test \) \
    -exec rm -rf {} +
mkdir "$stdlib/site-packages"
copy_links_leaving "$stdlib"

for module in "$stdlib"/lib-dynload/*.so; do
    bundle_libraries "$module"
    # lib-dynload is $out/lib/pythonX.Y/lib-dynload: ../.. is $out/lib
    patchelf --set-rpath '$ORIGIN/../..' "$module"
done

"$python" -m pip --python "$interpreter" install --no-cache-dir --no-warn-script-location \
    "$project"
write_launchers

# Compile now, in a mode that does not depend on file times surviving later
# copies, so that a hook never writes .pyc files into its installation.
"$interpreter" -I -m compileall -q -f -j 0 --invalidation-mode unchecked-hash "$out"

require_links_inside

# A hook runs with only the env its hooks.d file or CDI spec gives: no PATH, no PYTHON*.
env -i "$out/bin/fpga-crihook" --help >/dev/null
env -i "$out/bin/intel-fpga-crihook" --help >/dev/null  # the drop-in for Intel's CDI spec
echo "payload ready at $out"

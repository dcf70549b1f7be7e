#!/bin/sh
# Build the node payload: a virtual environment at $PREFIX with fpga-crihook
# installed, plus the Python interpreter it runs on.
#
# Usage: build-payload.sh PROJECT_DIR
#
# Runs in the builder stage of deployments/Containerfile. A plain venv (even
# with --copies) still needs the base interpreter's standard library at the
# path it was built with (/usr/local/lib/python3.X), and the node's own Python
# must not be used or touched. So the payload carries its interpreter:
#
#   $PREFIX/python/bin/python3.X     copy of the builder's interpreter,
#                                    RUNPATH $ORIGIN/../lib
#   $PREFIX/python/lib/               libpython and the shared libraries the
#                                    standard library's C modules need
#                                    (libffi, libz, libssl, ...), except glibc
#   $PREFIX/python/lib/python3.X/     standard library, byte-compiled
#   $PREFIX/bin, lib, pyvenv.cfg      the venv, home = $PREFIX/python/bin
#
# What the node must still provide is glibc, at least as new as the builder
# image's (see deployments/README.md). Paths are absolute: the payload works
# only at $PREFIX on the node, which is where install-on-node.sh puts it. No
# symlink in it leads out of it: one in the base's standard library that
# does (Debian's sitecustomize.py -> /etc/python3.X/sitecustomize.py) would
# have the hook read whatever the node has at that path, so it is replaced by
# a copy of its target.
#
# Needs: python3 with pip >= 22.3 (for --python), ldd, patchelf.

# $ORIGIN in single quotes is for the dynamic loader, not the shell.
# shellcheck disable=SC2016
set -eu

project=${1:?usage: build-payload.sh PROJECT_DIR}
prefix=${PREFIX:-/opt/intel/fpga-crihook}
python=${PYTHON:-python3}

base=$("$python" -c 'import sys; print(sys.base_prefix)')
version=$("$python" -c 'import sys; print("%d.%d" % sys.version_info[:2])')
executable=$("$python" -c 'import os, sys; print(os.path.realpath(sys.executable))')
interp=$prefix/python
stdlib=$interp/lib/python$version

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
# the whole tree) into $interp/lib, glibc excepted.
bundle_libraries() {
    ldd "$1" | awk '$2 == "=>" && $3 ~ /^\// { print $3 }' | while read -r library; do
        is_glibc "$library" && continue
        target=$interp/lib/${library##*/}
        [ -e "$target" ] && continue
        cp -L "$library" "$target"
        patchelf --set-rpath '$ORIGIN' "$target"
        echo "bundled $library"
    done
}

# Where a symlink under $1 leads out of $prefix, a copy of its target takes its
# place (a link to nothing is removed).
copy_links_leaving() {
    find "$1" -type l | while read -r link; do
        target=$(readlink -f "$link" || true)
        case $target in
            "$prefix"/*) continue ;;
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
    leaving=$(find "$prefix" -type l -exec sh -c '
        for link; do
            case $(readlink -f "$link") in "$0"/*) ;; *) echo "$link" ;; esac
        done' "$prefix" {} +)
    if [ -n "$leaving" ]; then
        echo "symlinks leading out of the payload: $leaving" >&2
        exit 1
    fi
}

echo "interpreter: $executable (Python $version, prefix $base)"
rm -rf "$prefix"
mkdir -p "$interp/bin" "$interp/lib"

# Resolve the interpreter's libraries (libpython) from the original, whose
# RUNPATH or ld.so.cache entry still points at the base installation.
bundle_libraries "$executable"
cp -L "$executable" "$interp/bin/python$version"
patchelf --set-rpath '$ORIGIN/../lib' "$interp/bin/python$version"

# The standard library, without what a hook never imports: tests, GUI, the
# static libpython and the build configuration under config-*, and the base
# environment's own site-packages (pip, setuptools).
cp -RP "$base/lib/python$version" "$stdlib"
rm -rf "$stdlib"/config-* "$stdlib/site-packages" "$stdlib/idlelib" "$stdlib/tkinter" \
    "$stdlib/turtledemo" "$stdlib/ensurepip" "$stdlib"/lib-dynload/_test* \
    "$stdlib"/lib-dynload/xx* "$stdlib"/lib-dynload/_tkinter*
find "$stdlib" -depth -type d \( -name test -o -name tests -o -name idle_test \) \
    -exec rm -rf {} +
mkdir "$stdlib/site-packages"
copy_links_leaving "$stdlib"

for module in "$stdlib"/lib-dynload/*.so; do
    bundle_libraries "$module"
    # lib-dynload is $interp/lib/pythonX.Y/lib-dynload: ../.. is $interp/lib
    patchelf --set-rpath '$ORIGIN/../..' "$module"
done

"$interp/bin/python$version" -m venv --without-pip "$prefix"
"$python" -m pip --python "$prefix/bin/python" install --no-cache-dir "$project"

# The console scripts run Python isolated (-I): a hook that crun runs with its
# own environment must not take PYTHONPATH, PYTHONHOME, PYTHONINSPECT or any
# other PYTHON* variable from it, nor a user site directory from HOME.
for script in "$prefix/bin/fpga-crihook" "$prefix/bin/intel-fpga-crihook"; do
    if [ "$(head -n 1 "$script")" != "#!$prefix/bin/python" ]; then
        echo "$script does not start with #!$prefix/bin/python" >&2
        exit 1
    fi
    sed -i "1s|\$| -I|" "$script"
done

# Compile now, in a mode that does not depend on file times surviving later
# copies, so that a hook never writes .pyc files into its installation.
"$prefix/bin/python" -m compileall -q -f -j 0 --invalidation-mode unchecked-hash \
    "$interp/lib" "$prefix/lib"

require_links_inside

# runc runs a hook with only hooks.d's env: no PATH, no PYTHON*.
env -i "$prefix/bin/fpga-crihook" --help >/dev/null
env -i "$prefix/bin/intel-fpga-crihook" --help >/dev/null  # the drop-in for Intel's CDI spec
echo "payload ready at $prefix"

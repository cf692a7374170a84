#!/usr/bin/env bash
# Download the wheels of benchmarks/gpu/wheels.txt (no dependencies) into a folder, for the Python
# that will install them:  fetch-wheels.sh DEST [PYTHON_VERSION]   e.g. fetch-wheels.sh .whl 3.12
# (the lent GPU machine's Python; default: this interpreter's).  Prints each wheel and its size.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
dest="${1:?usage: fetch-wheels.sh DEST [PYTHON_VERSION]}"
version="${2:-$(python3 -c 'import sys; print(f"{sys.version_info[0]}.{sys.version_info[1]}")')}"
mkdir -p "$dest"
platforms=()
for p in manylinux_2_28_x86_64 manylinux_2_17_x86_64 manylinux2014_x86_64; do
  platforms+=(--platform "$p")
done
grep -v '^\s*#' "$here/wheels.txt" | sed 's/#.*//' | xargs python3 -m pip download --quiet \
  --no-deps --only-binary=:all: --python-version "$version" --implementation cp \
  "${platforms[@]}" --platform any -d "$dest"
du -b "$dest"/*.whl | awk '{ printf "%8.2f MiB  %s\n", $1 / 2^20, $2; s += $1 } END { printf "%8.2f MiB  in all\n", s / 2^20 }'

#!/usr/bin/env bash
# Install what the SLURM tests (tests/test_slurm.py) and the local one-node cluster
# (tests/slurm/cluster.sh) need on Debian/Ubuntu: slurm-wlm (slurmctld, slurmd, sbatch, ...),
# munge (authentication), libtcmalloc-minimal4 (used elsewhere in the project) and mricron-data
# (the Colin27 T1 head of `make generalisation`, /usr/share/mricron/templates/ch2.nii.gz).
# Idempotent: quick (no apt-get at all) when everything is already installed.
# Usage: tests/slurm/install-debian.sh [PACKAGE...]   (as root, or with sudo available; packages
# given replace that list: tests/reader_study/install-debian.sh installs the browser with it)
set -euo pipefail

PACKAGES=(slurm-wlm munge libtcmalloc-minimal4 mricron-data)
if [ $# -gt 0 ]; then
    PACKAGES=("$@")
fi

missing=()
for p in "${PACKAGES[@]}"; do
    if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
        missing+=("$p")
    fi
done

if [ ${#missing[@]} -eq 0 ]; then
    echo "install-debian: already installed: ${PACKAGES[*]}"
    exit 0
fi

SUDO=""
if [ "$(id -u)" -ne 0 ]; then
    SUDO="sudo"
fi

echo "install-debian: installing: ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -q
# The packages' maintainer scripts try to start services through systemd/invoke-rc.d;
# in containers without an init system that fails harmlessly (cluster.sh starts the daemons).
$SUDO apt-get install -y -q --no-install-recommends "${missing[@]}"
echo "install-debian: done"

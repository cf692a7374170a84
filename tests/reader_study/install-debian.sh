#!/usr/bin/env bash
# Install the headless browser the reader-study page tests (tests/reader_study/test_page.py) drive:
# Debian's chromium and its chromedriver (/usr/bin/chromedriver), so that Selenium downloads
# nothing. Idempotent (tests/slurm/install-debian.sh does the work: no apt-get when installed).
# Usage: tests/reader_study/install-debian.sh      (as root, or with sudo available)
set -euo pipefail
exec bash "$(dirname "$0")/../slurm/install-debian.sh" chromium chromium-driver

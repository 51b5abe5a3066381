#!/usr/bin/env bash
# Set up everything on a fresh Debian 12 machine (run as root), then build the
# B12 article into every format into output/b12-lower-back-pain/.
set -euo pipefail
cd "$(dirname "$0")"

echo "==> system packages"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends \
    espeak-ng ffmpeg poppler-utils qpdf chromium epubcheck default-jre-headless \
    liblouis-bin liblouis-data >/dev/null

echo "==> Python package"
python3 -m pip install --quiet --disable-pip-version-check -e '.[test]'

echo "==> validators (npm, versions pinned in package-lock.json)"
# Ace drives the system Chromium; Puppeteer must not download a browser of its own.
PUPPETEER_SKIP_DOWNLOAD=1 npm ci --no-audit --no-fund --loglevel=error

echo "==> building the B12 article"
publish build source/b12-lower-back-pain.yaml

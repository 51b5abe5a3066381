#!/usr/bin/env bash
# Set up everything on a fresh Debian 12 machine (run as root), then build the
# B12 article into every format into output/b12-lower-back-pain/.
#
# The Python packages go into a virtual environment, .venv/, made with the
# first python3 on the PATH (Debian's own, /usr/bin/python3, on a stock
# machine): Debian's Python refuses `pip install` outside one (PEP 668).
set -euo pipefail
cd "$(dirname "$0")"

echo "==> system packages"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
# python3-venv makes the virtual environment; libpango and libharfbuzz-subset are WeasyPrint's layout libraries.
# The Noto fonts set the scripts the bundled Atkinson Hyperlegible lacks (the theme's `fonts:`): fonts-noto-core
# Arabic, Hebrew, Devanagari, Thai and others (12 MB to download), fonts-noto-cjk Chinese, Japanese and Korean
# (57 MB), fonts-noto-color-emoji the emoji (10 MB).
apt-get install -y -qq --no-install-recommends \
    python3 python3-venv espeak-ng ffmpeg poppler-utils qpdf chromium epubcheck default-jre-headless \
    libpango-1.0-0 libpangoft2-1.0-0 libharfbuzz-subset0 liblouis-bin liblouis-data fontconfig \
    fonts-noto-core fonts-noto-cjk fonts-noto-color-emoji >/dev/null

echo "==> Python package, in .venv/"
if [ ! -x .venv/bin/python ]; then
    python3 -m venv .venv
fi
.venv/bin/python -m pip install --quiet --disable-pip-version-check --upgrade pip
.venv/bin/python -m pip install --quiet --disable-pip-version-check -e '.[test]'
# The package's compiled bytecode, made once here: an editable install has none, and where Python may not
# write it (a read-only install, PYTHONDONTWRITEBYTECODE set) every build compiled each module again, 0.8 s
# of CPU in an edit's build. Python still compiles afresh any file changed since.
.venv/bin/python -m compileall -q pipeline

echo "==> validators (npm, versions pinned in package-lock.json)"
# Ace drives the system Chromium; Puppeteer must not download a browser of its own.
PUPPETEER_SKIP_DOWNLOAD=1 npm ci --no-audit --no-fund --loglevel=error

echo "==> building the B12 article"
.venv/bin/publish build source/b12-lower-back-pain.yaml

#!/bin/sh
# Make headless Chromium available for the book's browser check (tests/test_browser.py):
# Debian's `chromium` package, installed with apt-get when missing. Without apt (or without root and
# sudo) it says so and exits 0: the browser test then skips, naming this script.
set -eu
for name in chromium chromium-browser; do
    command -v "$name" >/dev/null 2>&1 && { echo "browser: using $(command -v "$name")"; exit 0; }
done
if ! command -v apt-get >/dev/null 2>&1; then
    echo "browser: no chromium and no apt-get; the browser check of the book will be skipped" >&2
    exit 0
fi
sudo=""
if [ "$(id -u)" -ne 0 ]; then
    command -v sudo >/dev/null 2>&1 || { echo "browser: no chromium, and installing it needs root (sudo is missing); the browser check will be skipped" >&2; exit 0; }
    sudo="sudo"
fi
echo "browser: installing Debian's chromium"
$sudo apt-get install -y -qq --no-install-recommends chromium >/dev/null 2>&1 || {
    $sudo apt-get update -qq && $sudo apt-get install -y -qq --no-install-recommends chromium >/dev/null; } || {
    echo "browser: apt-get could not install chromium; the browser check of the book will be skipped" >&2; exit 0; }
command -v chromium >/dev/null 2>&1 && echo "browser: installed $(command -v chromium)"

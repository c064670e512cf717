#!/bin/sh
# Make sure the browser tests can run: Chromium and its driver are the one thing pip cannot bring.
# Installs Debian's packages when missing and we can (root, apt-get); otherwise warns loudly and
# the browser tests skip with the same message (CI must have them: it runs as root on Debian).
set -eu
if command -v chromium >/dev/null 2>&1 && command -v chromedriver >/dev/null 2>&1; then
    exit 0
fi
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "ensure-chromium: installing chromium and chromium-driver (apt-get)" >&2
    if apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver; then
        exit 0
    fi
    echo "ensure-chromium: apt-get could not install them" >&2
fi
cat >&2 <<'MSG'
################################################################################
# WARNING: chromium and chromedriver are missing and cannot be installed here
# (needs root and apt-get). The browser tests (-m browser) WILL BE SKIPPED.
# Install them: apt-get install chromium chromium-driver
################################################################################
MSG

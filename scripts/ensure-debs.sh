#!/bin/sh
# Make sure the Debian packages some tests need are installed: the one thing pip cannot bring.
#   scripts/ensure-debs.sh chromium chromium-driver [nginx wrk ...]
# Silent when every package is installed (dpkg says "install ok installed"). Otherwise, as root
# with apt-get, installs only the missing ones: --no-install-recommends, and never an upgrade of
# an installed package (a simulation runs first; if the new packages would upgrade any installed
# one, nothing is installed and it says which). apt's output goes to a log, shown (its tail) only
# on failure. Without root or apt-get, or on any refusal, it warns loudly and exits 0: the tests
# needing the packages skip with their own loud reason (tests/browser.py for Chromium).
# ITEMSEAL_APT_GET names the apt-get to run (tests point it at nothing to see the warning).
set -u
apt=${ITEMSEAL_APT_GET:-apt-get}
[ $# -gt 0 ] || { echo "usage: $0 PACKAGE..." >&2; exit 2; }
missing=""
for package in "$@"; do
    status=$(dpkg-query -W -f='${Status}' "$package" 2>/dev/null || true)
    [ "$status" = "install ok installed" ] || missing="$missing $package"
done
[ -z "$missing" ] && exit 0

warn() {
    cat >&2 <<MSG
################################################################################
# WARNING: Debian packages missing:$missing
# $1
# The tests that need them WILL BE SKIPPED. Install them by hand:
#   apt-get install --no-install-recommends$missing
################################################################################
MSG
    exit 0
}
[ "$(id -u)" = 0 ] || warn "not root: cannot install them."
command -v "$apt" >/dev/null 2>&1 || warn "no apt-get on this machine."

log=${TMPDIR:-/tmp}/itemseal-ensure-debs.log
export DEBIAN_FRONTEND=noninteractive
flags="-y -q --no-install-recommends --no-upgrade -o Dpkg::Use-Pty=0"
echo "ensure-debs: installing$missing (apt-get; log in $log)" >&2
: >"$log"
# shellcheck disable=SC2086
simulate() { "$apt" -s install $flags $missing >"$log.sim" 2>&1; }
if ! simulate; then  # package lists missing or stale: fetch them once
    "$apt" update -q >>"$log" 2>&1 || { tail -n 20 "$log" >&2; warn "apt-get update failed."; }
    simulate || { tail -n 20 "$log.sim" >&2; warn "apt-get cannot install them."; }
fi
# "Inst NAME [OLD] (NEW ...)": NAME is installed and would be upgraded.
upgrades=$(awk '$1 == "Inst" && $3 ~ /^\[/ {print $2}' "$log.sim" | tr '\n' ' ')
[ -z "$upgrades" ] || warn "installing them would upgrade installed packages: $upgrades"
# shellcheck disable=SC2086
if ! "$apt" install $flags $missing >>"$log" 2>&1; then
    tail -n 30 "$log" >&2
    warn "apt-get install failed (log above)."
fi

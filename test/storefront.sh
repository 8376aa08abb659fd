#!/bin/sh
# The storefront (examples/storefront, make test): install its packages
# from the committed lockfile (npm ci), compile it, and run its browser
# tests in Debian's Chromium against the server of the PG* variables (a
# cluster of pg_virtualenv named "regress", with track_commit_timestamp
# on: the sold-out push is timed from the last order's commit).  Prints
# node's TAP lines.
set -eu
cd "$(dirname "$0")/../examples/storefront"
npm ci --no-audit --no-fund --loglevel=error
export STOREFRONT_PG_CTL="pg_ctlcluster ${PGVERSION:-15} regress"
export STOREFRONT_SCREENSHOT="${STOREFRONT_SCREENSHOT:-$PWD/test-results/mid-sale.png}"
npm test

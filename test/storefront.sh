#!/bin/sh
# The storefront (examples/storefront, make test): install its packages
# from the committed lockfile (npm ci), compile it, and run its tests
# against the server of the PG* variables (a cluster of pg_virtualenv,
# with track_commit_timestamp on: the sold-out push is timed from the last
# order's commit).  Prints node's TAP lines.
#  - test/api.test.ts: every outcome of POST /api/checkout with
#    app.inject(), in process (placed, replayed, each refusal, SH015, bad
#    input, unknown customer and product, lock timeout, a connection cut
#    mid-statement, pool timeout, the database down, the breaker open);
#  - test/outage.test.ts: the server as a process, the database stopped
#    (-m fast, -m immediate) and started 6 times under checkouts;
#  - test/browser.test.ts: the page in Debian's Chromium.
# The last two stop and start the cluster (STOREFRONT_PG_CTL), so nothing
# else may run in it.
set -eu
cd "$(dirname "$0")/../examples/storefront"
npm ci --no-audit --no-fund --loglevel=error
export STOREFRONT_PG_CTL="pg_ctlcluster ${PGVERSION:-15} regress"
export STOREFRONT_SCREENSHOT="${STOREFRONT_SCREENSHOT:-$PWD/test-results/mid-sale.png}"
npm test

#!/bin/sh
# The Drizzle example (examples/drizzle, make test): install its packages
# from the committed lockfile (npm ci), compile it, and run its node:test
# suite against the server of the PG* variables.  Prints node's TAP lines.
set -eu
cd "$(dirname "$0")/../examples/drizzle"
npm ci --no-audit --no-fund --loglevel=error
npm test

#!/bin/sh
# Flash-sale races through tools/flashsale, against the server of the PG*
# variables.  Each run prints "race: ok NAME" or "race: FAILED NAME"; the
# exit status is the number of failed runs.
set -u
cd "$(dirname "$0")/.."
. test/lib.sh

new_db checkout_race checkout || exit 1
failed=0

# race NAME FLASHSALE-OPTIONS...: one run, verdict from its exit status
race() {
	_name=$1
	shift
	verdict race "$_name (tools/flashsale $*)" tools/flashsale -d checkout_race "$@" ||
		failed=$((failed + 1))
	echo
}

# The seed's scenario, several times: 20 in stock, 33 buyers at once
for run in 1 2 3 4 5; do
	race "seed $run: 20 in stock, 33 buyers" --buyers 33 --stock 20 \
		--expect-orders 20 --expect-rejected 13 --expect-stock 0
done

# Hundreds of buyers, 3-line carts over 5 products, 60 connections: more
# demand than stock, so some buyers are rejected; the invariants must hold
race "400 buyers, 3-line carts over 5 products, 60 connections" \
	--buyers 400 --products 5 --lines 3 --stock 150 --client 60

# Several units per line: stock runs out part-way through a line
race "300 buyers wanting 2 or more of 4 products, 50 connections" \
	--buyers 300 --products 4 --lines 2 --quantity 3 --stock 200 --client 50

# Plenty of stock: every buyer must get an order
race "200 buyers, enough for all" --buyers 200 --stock 200 --client 50 \
	--expect-orders 200 --expect-rejected 0 --expect-stock 0

# Carts longer than the queue takes (16 lines) lock rows without queueing
race "150 buyers, 20-line carts over 25 products (no queue), 50 connections" \
	--buyers 150 --products 25 --lines 20 --stock 100 --client 50

# Slotted products (shop_split_stock): buyers spread over the slots; no
# oversell, no lost order, and no false "sold out" (flashsale checks every
# SH001 against the stock left)
race "slots: 20 in stock over 8 slots, 33 buyers" --slots 8 --buyers 33 --stock 20 \
	--expect-orders 20 --expect-rejected 13 --expect-stock 0
race "slots: 200 buyers, enough for all, 16 slots, 50 connections" --slots 16 \
	--buyers 200 --stock 200 --client 50 \
	--expect-orders 200 --expect-rejected 0 --expect-stock 0
# 3 per buyer from 20 spread over 8 slots of 2 or 3: slots must be combined
# until the last 2, or some buyer is told "sold out" too early
race "slots: 3 each from 20 over 8 slots, 33 buyers" --slots 8 --buyers 33 \
	--stock 20 --quantity 3 --expect-orders 6 --expect-rejected 27 --expect-stock 2
race "slots: 300 buyers, 3-line carts over 5 slotted products, 60 connections" \
	--slots 4 --buyers 300 --products 5 --lines 3 --quantity 2 --stock 150 \
	--client 60
PGOPTIONS="${PGOPTIONS:-} -c checkout.fail_fast=off" \
	race "slots, fail fast off: 20 in stock over 4 slots, 33 buyers" --slots 4 \
	--buyers 33 --stock 20 --expect-orders 20 --expect-rejected 13 --expect-stock 0

# Both levers off (checkout.fail_fast, checkout.queue_locks): still exact
PGOPTIONS="${PGOPTIONS:-} -c checkout.fail_fast=off -c checkout.queue_locks=off" \
	race "levers off: 20 in stock, 33 buyers" --buyers 33 --stock 20 \
	--expect-orders 20 --expect-rejected 13 --expect-stock 0

# Idempotency keys: every buyer's first call loses its connection right
# after it is sent; the buyer calls again with its key and must end with
# exactly one order (the first call's, if it committed) or a clear error
race "keys: 200 buyers drop their first call and retry with their key, 40 connections" \
	--drop-first --buyers 200 --stock 150 --client 40 \
	--expect-orders 150 --expect-rejected 50 --expect-stock 0
race "keys over slots: 200 buyers drop their first call, 8 slots" --slots 8 \
	--drop-first --buyers 200 --stock 150 --client 40 \
	--expect-orders 150 --expect-rejected 50 --expect-stock 0

# Purchase limits under a crowd: each buyer checks out from 3 tabs at once,
# each tab putting the cart back when another tab ordered it: nobody gets
# past the limit, whatever the interleaving
race "limit: 100 buyers in 3 tabs each, 1 per customer, 60 connections" \
	--limit 1 --tabs 3 --buyers 100 --stock 1000 --client 60 --expect-orders 100
race "limit: 150 buyers in 2 tabs, 2 per customer, 2-line carts over 4 slots" \
	--limit 2 --tabs 2 --quantity 1 --lines 2 --products 2 --slots 4 --buyers 150 \
	--stock 1000 --client 60

# Vouchers (1.2): 2,000 buyers of a hot product in slots all type one
# code of a voucher limited to 100: exactly 100 discounted orders, the
# others SH010 (flashsale checks no order past the limit, none fewer when
# a buyer was told SH010, and each order's discount); with every first
# call dropped and retried with its key, still 100
race "voucher: 2000 buyers, one code limited to 100, 16 slots, 64 connections" \
	--voucher 100 --slots 16 --buyers 2000 --stock 3000 --client 64 \
	--expect-orders 100 --expect-rejected 0 --expect-stock 2900
race "voucher with keys: 500 buyers drop their first call and retry, limit 100" \
	--voucher 100 --slots 16 --drop-first --buyers 500 --stock 3000 --client 40 \
	--expect-orders 100 --expect-rejected 0 --expect-stock 2900

# Locations (1.2): each product's stock over two or three locations, skewed
# (the default, preferred, keeps a quarter): every unit sells, none twice;
# the books of every location and every order's allocations are right, and
# nobody is told "sold out" while another location holds the item
race "locations: seed's sale over 2 locations" --locations 2 --buyers 33 --stock 20 \
	--expect-orders 20 --expect-rejected 13 --expect-stock 0
race "locations: 300 buyers, 3-line carts over 5 products in 3 locations, 60 connections" \
	--locations 3 --buyers 300 --products 5 --lines 3 --stock 120 --client 60
race "locations: 200 buyers wanting 3 of 2 products in 2 locations, 8 slots, 50 connections" \
	--locations 2 --slots 8 --buyers 200 --products 2 --lines 2 --quantity 3 --stock 150 --client 50

# Preorders (1.2): every buyer accepts a preorder of products capped past
# their stock: orders = stock + cap exactly when demand exceeds both, no
# product preorders past its cap (the count of open units matching), the
# books right; over skewed locations and slots too
race "preorders: 10 in stock, a cap of 15, 60 buyers, 40 connections" --preorder 15 \
	--buyers 60 --stock 10 --client 40 --expect-orders 25 --expect-rejected 35 --expect-stock 0
race "preorders: 200 buyers wanting 2 of 3 products, cap 40, 2 locations, 8 slots" --preorder 40 \
	--locations 2 --slots 8 --buyers 200 --products 3 --lines 2 --quantity 2 --stock 60 --client 50

exit "$failed"

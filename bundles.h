/*-------------------------------------------------------------------------
 *
 * bundles.h
 *		bundles.c: a cart's bundles sold as their parts (in progress).
 *
 *-------------------------------------------------------------------------
 */
#ifndef BUNDLES_H
#define BUNDLES_H

#include "call.h"

/* The parts an order's bundles took, for its write */
typedef struct BundleParts
{
	int			n;
	Datum	   *bundle_ids;
	Datum	   *product_ids;
	Datum	   *quantities;		/* per unit of the bundle */
} BundleParts;

extern bool bundles_expand(CartLine *lines, int nlines, CartLine **stock_lines,
						   int *nstock, BundleParts *parts);
extern void bundles_write_parts(int64 order_id, const BundleParts *parts);

#endif							/* BUNDLES_H */

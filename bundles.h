/*-------------------------------------------------------------------------
 *
 * bundles.h
 *		bundles.c: a cart's bundles sold as their parts.
 *
 *-------------------------------------------------------------------------
 */
#ifndef BUNDLES_H
#define BUNDLES_H

#include "call.h"

extern bool bundles_expand(CartLine *lines, int nlines, CartLine **stock_lines,
						   int *nstock, BundleParts *parts);

#endif							/* BUNDLES_H */

/*-------------------------------------------------------------------------
 *
 * preorders.h
 *		preorders.c: units sold before they arrive.
 *
 *-------------------------------------------------------------------------
 */
#ifndef PREORDERS_H
#define PREORDERS_H

#include "call.h"

extern void preorders_find_lines(int64 customer_id, CartLine *lines, int nlines);
extern int	preorders_drop_served_lines(int64 customer_id, CartLine *lines, int nlines);
extern bool preorders_take(CheckoutCall *call, CartLine *lines, int nlines,
						   SlotTakes *takes);
extern void preorders_write(int64 order_id, const CartLine *lines, int nlines);

#endif							/* PREORDERS_H */

/*-------------------------------------------------------------------------
 *
 * locations.h
 *		locations.c: stock in locations other than the default.
 *
 *-------------------------------------------------------------------------
 */
#ifndef LOCATIONS_H
#define LOCATIONS_H

#include "call.h"

extern bool locations_find_lines(CartLine *lines, int nlines);
extern int	locations_drop_served_lines(CartLine *lines, int nlines);
extern bool locations_take_slot(CheckoutCall *call, CartLine *line);
extern void locations_lock_line(CheckoutCall *call, CartLine *line, bool row_current);
extern bool locations_locate_moved_lines(CheckoutCall *call, CartLine *lines, int nlines);
extern bool locations_locate_short_lines(CheckoutCall *call, CartLine *lines, int nlines);
extern void locations_allocate(CartLine *lines, int nlines, SlotTakes *takes);
extern void locations_write_allocations(int64 order_id, const CartLine *lines, int nlines);

#endif							/* LOCATIONS_H */

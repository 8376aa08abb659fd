/*-------------------------------------------------------------------------
 *
 * slots.h
 *		slots.c: a line served from its product's stock slots.
 *
 *-------------------------------------------------------------------------
 */
#ifndef SLOTS_H
#define SLOTS_H

#include "call.h"

extern void slots_take(CheckoutCall *call, CartLine *line, SlotTakes *takes);

#endif							/* SLOTS_H */

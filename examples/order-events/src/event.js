// event.js: an order event as both sources hand it to the consumer.
//
// The checkout extension writes every event as one JSON object:
//   {"schema_version": 1, "event_id": N, "kind": "placed", "order_id": N,
//    "occurred_at": "...", ...the kind's fields}
// The consumer delivers that text unchanged; it reads only the id (the
// Idempotency-Key, and the delivery order within a batch), the kind and the
// order id (for its log).

/** An event from its JSON text; null when the text is not an order event. */
export function parseEvent(json) {
  let doc;
  try {
    doc = JSON.parse(json);
  } catch {
    return null;
  }
  if (doc === null || typeof doc !== 'object' || !Number.isSafeInteger(doc.event_id)) return null;
  return {
    id: String(doc.event_id),
    kind: String(doc.kind),
    orderId: String(doc.order_id),
    json,
  };
}

/** Sort events by their id, in place: the order of each order's changes. */
export function sortById(events) {
  return events.sort((a, b) => Number(a.id) - Number(b.id));
}

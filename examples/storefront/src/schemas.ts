// The JSON schemas the routes share: a request's lines, as PUT /api/cart
// and POST /api/checkout both take them (1 to 50 distinct products,
// quantities 1 to 1000).
export const linesSchema = {
  type: "array",
  minItems: 1,
  maxItems: 50,
  items: {
    type: "object",
    required: ["productId", "quantity"],
    additionalProperties: false,
    properties: {
      productId: { type: "integer", minimum: 1 },
      quantity: { type: "integer", minimum: 1, maximum: 1000 },
    },
  },
} as const;

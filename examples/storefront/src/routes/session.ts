// POST /api/session: the shopper of the cookie, or a new one (a row of
// customers) and its cookie.  The example's stand-in for the shop's sign-in.
import type { FastifyPluginAsync } from "fastify";

const session: FastifyPluginAsync = async (app) => {
  app.post("/api/session", async (req, reply) => {
    let customerId = app.sessions.customerOf(req.headers.cookie);
    if (customerId === null) {
      customerId = await app.shop.newCustomer();
      reply.header("set-cookie", app.sessions.cookie(customerId));
    }
    return { customerId };
  });
};

export default session;

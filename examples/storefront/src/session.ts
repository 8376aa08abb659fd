// The example's stand-in for a shop's sign-in: a signed cookie `shopper`
// holding a customer id (HMAC-SHA256 with the server's secret).  Replace it
// with the shop's own sessions: every route needs only the customer id.
import { createHmac, randomBytes, timingSafeEqual } from "node:crypto";

export class Sessions {
  private readonly secret: string;

  constructor(secret?: string) {
    this.secret = secret ?? randomBytes(32).toString("hex");
  }

  private sign(id: number): string {
    return createHmac("sha256", this.secret).update(String(id)).digest("base64url");
  }

  /** The customer id of a Cookie header, or null (none, or not signed by us) */
  customerOf(cookie: string | undefined): number | null {
    const m = /(?:^|;\s*)shopper=(\d+)\.([\w-]+)/.exec(cookie ?? "");
    if (m === null) return null;
    const want = Buffer.from(this.sign(Number(m[1])));
    const got = Buffer.from(m[2]);
    return want.length === got.length && timingSafeEqual(want, got) ? Number(m[1]) : null;
  }

  /** The Set-Cookie header of a session for this customer */
  cookie(id: number): string {
    return `shopper=${id}.${this.sign(id)}; Path=/; HttpOnly; SameSite=Lax; Max-Age=2592000`;
  }
}

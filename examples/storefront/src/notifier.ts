// The stock notifier: shop_notify_stock_changes() once a second, as the
// extension's owner (the function is the owner's alone).  A shop with
// pg_cron 1.5 or later schedules it in the database instead:
//   SELECT cron.schedule('checkout-stock-notices', '1 seconds', 'SELECT shop_notify_stock_changes()');
// pg_cron 1.4 (Debian 12's) schedules by the minute, too slow for a sale:
// there this loop, in the server or any process of the shop, does it.
import pg from "pg";

export function startNotifier(connectionString: string, everyMs = 1000, log: (m: string) => void = () => {}) {
  const pool = new pg.Pool({ connectionString, max: 1, application_name: "storefront stock notifier" });
  pool.on("error", () => {}); // a dropped idle connection: the next run reconnects
  let failing = false;
  const timer = setInterval(async () => {
    try {
      await pool.query("SELECT shop_notify_stock_changes()");
      failing = false;
    } catch (e) {
      if (!failing) log(`stock notifier: ${(e as Error).message}`);
      failing = true;
    }
  }, everyMs);
  return async () => {
    clearInterval(timer);
    await pool.end();
  };
}

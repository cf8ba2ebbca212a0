// Runs bench/put-shapes/page.html in headless Chromium and prints, per variant, the time building
// the records, issuing their puts (structured clone and index keys, on the page's thread) and in
// total with the commits. Usage: node bench/put-shapes/run.mjs
import { createServer } from "node:http";
import { readFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";

const HERE = dirname(fileURLToPath(import.meta.url));
const ROOT = join(HERE, "..", "..");
const { chromium } = await import(pathToFileURL(join(ROOT, "tools", "node_modules", "playwright-core", "index.mjs")).href);
const files = { "/": join(HERE, "page.html"), "/docs.js": join(ROOT, "bench", "docs.js") };
const server = createServer((req, res) => {
  const f = files[req.url];
  if (!f) return res.writeHead(404).end();
  res.writeHead(200, { "Content-Type": f.endsWith(".js") ? "text/javascript" : "text/html" });
  res.end(readFileSync(f));
}).listen(0, "127.0.0.1");
await new Promise((ok) => server.on("listening", ok));
const browser = await chromium.launch({
  executablePath: process.env.FERROSYNC_BENCH_CHROMIUM || "/usr/bin/chromium",
  args: ["--headless=new", "--no-sandbox", "--disable-gpu"],
  headless: true,
});
const page = await browser.newPage();
await page.goto(`http://127.0.0.1:${server.address().port}/`);
await page.waitForFunction(() => window.result, null, { timeout: 600000 });
const r = await page.evaluate(() => window.result);
for (const k of Object.keys(r.put)) {
  console.log(`${k.padEnd(8)} build ${r.build[k].toFixed(0)} ms, put ${r.put[k].toFixed(0)} ms, total ${r.total[k].toFixed(0)} ms`);
}
await browser.close();
server.close();

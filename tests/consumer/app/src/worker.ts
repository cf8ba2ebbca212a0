// The same scenario in a dedicated module worker: ferrosync must work where there is no `window`.
import { run } from "./scenario";

self.onmessage = async (e: MessageEvent<{ name: string }>) => {
  try {
    postMessage({ ok: await run(e.data.name) });
  } catch (err) {
    postMessage({ error: err instanceof Error ? `${err.message}\n${err.stack ?? ""}` : String(err) });
  }
};

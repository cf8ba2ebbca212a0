// Runs the scenario on the page and in a module worker, and publishes the outcome for the test
// (`window.__consumer`). `?phase=reopen` reads back what the first phase stored, after a reload.
import { reopen, run, type Outcome, type Reopened } from "./scenario";

type Result =
  | { phase: "run"; page: Outcome; worker: Outcome }
  | { phase: "reopen"; page: Reopened }
  | { error: string };

declare global {
  interface Window {
    __consumer?: Result;
  }
}

function inWorker(name: string): Promise<Outcome> {
  return new Promise((resolve, reject) => {
    const worker = new Worker(new URL("./worker.ts", import.meta.url), { type: "module" });
    worker.onmessage = (e: MessageEvent<{ ok: Outcome } | { error: string }>) => {
      worker.terminate();
      if ("ok" in e.data) resolve(e.data.ok);
      else reject(new Error(`in the worker: ${e.data.error}`));
    };
    worker.onerror = (e) => reject(new Error(`worker failed: ${e.message}`));
    worker.postMessage({ name });
  });
}

async function main(): Promise<Result> {
  const phase = new URLSearchParams(location.search).get("phase") ?? "run";
  if (phase === "reopen") return { phase, page: await reopen("consumer-page") };
  const page = await run("consumer-page");
  const worker = await inWorker("consumer-worker");
  return { phase: "run", page, worker };
}

const out = document.getElementById("out")!;
main().then(
  (result) => {
    window.__consumer = result;
    out.textContent = JSON.stringify(result, null, 2);
  },
  (e: unknown) => {
    const message = e instanceof Error ? `${e.message}\n${e.stack ?? ""}` : String(e);
    console.error(`consumer scenario failed: ${message}`);
    window.__consumer = { error: message };
    out.textContent = message;
  },
);

// An app that uses no framework binding: its bundle must contain none of their code.
import { openDatabase } from "../shared/plain-db";

declare global {
  interface Window {
    __plain?: unknown;
  }
}

openDatabase().then(
  async ({ tasks }) => {
    await tasks.put({ id: "p", title: "plain", done: false, rank: 1 });
    window.__plain = (await tasks.find()).map((t) => t.title);
  },
  (e) => (window.__plain = { error: String(e) }),
);

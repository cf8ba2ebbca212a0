import { createApp, defineComponent, h } from "vue";
import { DatabaseKey, useDatabase, useLiveQuery } from "ferrosync/vue";
import App from "./App.vue";
import { start } from "../shared/harness";
import { breakNextRun, itemsDatabase, RERUN_QUERY, until, type FailureReport, type Item } from "../shared/failure";

const Ranked = defineComponent({
  setup() {
    const list = useLiveQuery(useDatabase().collection<Item>("items"), RERUN_QUERY);
    return () => h("p", { id: "ranked" }, list.value === undefined ? "…" : list.value.map((i) => i.id).join(","));
  },
});

/** A live query whose later run fails: the error reaches Vue's error handling where the ref is read. */
async function failure(): Promise<FailureReport> {
  const { name, db, items } = await itemsDatabase();
  const before = window.__fw!.stats().open;
  const el = document.createElement("div");
  document.body.append(el);
  let handled: string | null = null;
  const app = createApp(Ranked);
  app.provide(DatabaseKey, db);
  app.config.errorHandler = (error) => {
    handled = String((error as { code?: string }).code);
    el.setAttribute("data-failed", handled);
  };
  app.mount(el);
  await until(() => el.textContent === "b", "the first result");
  await breakNextRun(name, items);
  await until(() => el.hasAttribute("data-failed"), "Vue's error handler");
  const shown = el.getAttribute("data-failed");
  app.unmount();
  el.remove();
  db.close();
  return { shown, handled, leftOpen: window.__fw!.stats().open - before };
}

void start((db) => {
  const app = createApp(App);
  app.provide(DatabaseKey, db);
  app.mount("#app");
  return () => app.unmount();
}, failure);

import { createApp, defineComponent, h } from "vue";
import { DatabaseKey, useDatabase, useLiveQuery } from "ferrosync/vue";
import App from "./App.vue";
import { start } from "../shared/harness";
import { probeFailure, RERUN_QUERY, type FailureReport, type Item } from "../shared/failure";

const Ranked = defineComponent({
  setup() {
    const list = useLiveQuery(useDatabase().collection<Item>("items"), RERUN_QUERY);
    return () => h("p", { id: "ranked" }, list.value === undefined ? "…" : list.value.map((i) => i.id).join(","));
  },
});

/** A live query whose later run fails: the error reaches Vue's error handling where the ref is read. */
function failure(): Promise<FailureReport> {
  return probeFailure(
    (db, el, handled) => {
      const app = createApp(Ranked);
      app.provide(DatabaseKey, db);
      app.config.errorHandler = (error) => {
        handled(error);
        el.setAttribute("data-failed", String((error as { code?: string }).code));
      };
      app.mount(el);
      return () => app.unmount();
    },
    (el) => el.getAttribute("data-failed"),
    "Vue's error handler",
  );
}

void start((db) => {
  const app = createApp(App);
  app.provide(DatabaseKey, db);
  app.mount("#app");
  return () => app.unmount();
}, failure);

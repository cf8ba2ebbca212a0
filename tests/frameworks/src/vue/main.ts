import { createApp } from "vue";
import { DatabaseKey } from "ferrosync/vue";
import App from "./App.vue";
import { start } from "../shared/harness";

void start((db) => {
  const app = createApp(App);
  app.provide(DatabaseKey, db);
  app.mount("#app");
  return () => app.unmount();
});

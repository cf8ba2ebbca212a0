import { mount, unmount } from "svelte";
import App from "./App.svelte";
import { start } from "../shared/harness";

void start((db, tasks) => {
  const app = mount(App, { target: document.getElementById("app")!, props: { db, tasks } });
  return () => void unmount(app);
});

// Builds every app (one page each) into dist/, in development mode (run.sh also sets
// NODE_ENV=development, which is what selects React's development build) so that React's StrictMode
// really double-mounts and the frameworks' development checks run. The plain app has its own
// config (vite.plain.config.mjs) so its bundle can be checked for binding code on its own.
import { defineConfig } from "vite";
import vue from "@vitejs/plugin-vue";
import { svelte } from "@sveltejs/vite-plugin-svelte";

export default defineConfig({
  mode: "development",
  plugins: [vue(), svelte()],
  build: {
    outDir: "dist",
    emptyOutDir: true,
    minify: false,
    rollupOptions: {
      input: { react: "react.html", vue: "vue.html", svelte: "svelte.html", rxjs: "rxjs.html" },
    },
  },
});

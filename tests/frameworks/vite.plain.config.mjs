// The plain app (no binding), in production mode as a real app would ship.
import { defineConfig } from "vite";

export default defineConfig({
  // Served by the test server under /plain/ next to the other apps.
  base: "/plain/",
  build: { outDir: "dist/plain", emptyOutDir: true, rollupOptions: { input: "plain.html" } },
});

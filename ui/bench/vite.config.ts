// Builds the render benchmark page (bench/flamegraph_render.mjs at the repository root runs it).
import { fileURLToPath } from "node:url";
import { defineConfig } from "vite";

export default defineConfig({
  root: fileURLToPath(new URL(".", import.meta.url)),
  base: "./",
  logLevel: "warn",
  build: {
    outDir: fileURLToPath(new URL("../../bench/out/flame-render", import.meta.url)),
    emptyOutDir: true,
    rollupOptions: { input: fileURLToPath(new URL("./render-bench.html", import.meta.url)) },
  },
});

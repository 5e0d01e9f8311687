import { defineConfig } from "vitest/config";
import { fixtureApi } from "./fixture-api";

// The server serves ui/dist at "/" (hash routing, relative asset paths: works under any prefix).
// `SPANPROF_API=http://127.0.0.1:4040 npm run dev` proxies the API to a running server.
export default defineConfig({
  base: "./",
  plugins: process.env.SPANPROF_UI_FIXTURES ? [fixtureApi()] : [],
  build: { outDir: "dist", emptyOutDir: true, chunkSizeWarningLimit: 600 },
  server: {
    proxy: process.env.SPANPROF_API
      ? { "/api": process.env.SPANPROF_API, "/querier.v1.QuerierService": process.env.SPANPROF_API }
      : undefined,
  },
  test: { include: ["tests/**/*.test.ts"] },
});

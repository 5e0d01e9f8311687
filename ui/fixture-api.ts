// Dev-only: answers the API from tests/fixtures, so the UI can be worked on (and looked at)
// without a server: SPANPROF_UI_FIXTURES=1 npx vite (or vite preview after a build).
import { readFileSync } from "node:fs";
import type { Connect, Plugin } from "vite";

const ROUTES: [RegExp, string][] = [
  [/^\/api\/v1\/services/, "services.json"],
  [/^\/api\/v1\/traces\/[^/?]+/, "trace.json"],
  [/^\/api\/v1\/traces/, "traces.json"],
  [/^\/api\/v1\/flamegraph\?.*span_id=/, "flamegraph_span.json"],
  [/^\/api\/v1\/flamegraph/, "flamegraph_service.json"],
  [/^\/api\/v1\/timeline/, "timeline.json"],
  [/^\/querier\.v1\.QuerierService\/ProfileTypes/, "profile_types.json"],
  [/^\/querier\.v1\.QuerierService\/LabelNames/, "label_names.json"],
  [/^\/querier\.v1\.QuerierService\/LabelValues/, "label_values.json"],
];

const handler: Connect.NextHandleFunction = (req, res, next) => {
  const hit = ROUTES.find(([re]) => re.test(req.url ?? ""));
  if (!hit) return next();
  res.setHeader("Content-Type", "application/json");
  res.end(readFileSync(new URL(`./tests/fixtures/${hit[1]}`, import.meta.url)));
};

export function fixtureApi(): Plugin {
  return {
    name: "spanprof-fixture-api",
    configureServer: (s) => void s.middlewares.use(handler),
    configurePreviewServer: (s) => void s.middlewares.use(handler),
  };
}

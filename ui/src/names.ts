// Friendly names for Pyroscope profile type ids ("name:sample_type:sample_unit:period_type:
// period_unit"). Known types get a word ("CPU", "Wall"), the rest a readable composition.
const KNOWN: Record<string, string> = {
  "process_cpu:cpu:nanoseconds:cpu:nanoseconds": "CPU",
  "process_cpu:samples:count:cpu:nanoseconds": "CPU (samples)",
  "wall:wall:nanoseconds:wall:nanoseconds": "Wall",
  "wall:wall:nanoseconds:cpu:nanoseconds": "Wall",
  "memory:alloc_objects:count:space:bytes": "Allocations (objects)",
  "memory:alloc_space:bytes:space:bytes": "Allocations (bytes)",
  "memory:inuse_objects:count:space:bytes": "In-use objects",
  "memory:inuse_space:bytes:space:bytes": "In-use memory",
  "goroutine:goroutine:count:goroutine:count": "Goroutines",
  "mutex:contentions:count:contentions:count": "Lock contentions",
  "mutex:delay:nanoseconds:contentions:count": "Lock wait time",
  "block:contentions:count:contentions:count": "Blocking events",
  "block:delay:nanoseconds:contentions:count": "Blocking time",
};

/** "CPU" for process_cpu:cpu:nanoseconds:cpu:nanoseconds; "Wall" for wall time; else "name: type (unit)". */
export function profileTypeLabel(id: string): string {
  if (KNOWN[id]) return KNOWN[id];
  const [name, type, unit] = id.split(":");
  if (!type) return id;
  if (name === "wall" || type === "wall") return "Wall";
  const words = (s: string) => s.replace(/[_.]+/g, " ");
  return `${words(name)}: ${words(type)}${unit ? ` (${unit})` : ""}`;
}

/** The short name used by the CPU/Wall switch and page titles ("CPU", "Wall", …). */
export function profileKind(id: string): string {
  return profileTypeLabel(id).split(" (")[0];
}

/** What a profile type's values are, for sentences: "CPU", "wall-clock time", else its short name. */
export function profileNoun(id: string): string {
  const kind = profileKind(id);
  return kind === "CPU" ? "CPU" : kind === "Wall" ? "wall-clock time" : kind;
}

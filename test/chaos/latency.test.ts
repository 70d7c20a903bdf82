import { scenarioSuite } from "./suite.ts";

// 2% of storage calls take 1-3 s (p99 about 2 s), against 4 s leases.
scenarioSuite("latency", "4 workers keep every invariant on storage with a 2 s p99 latency", {
  tasks: 100,
  workers: 4,
});

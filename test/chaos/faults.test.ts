import { scenarioSuite } from "./suite.ts";

// 4 workers, 200 tasks, 10% of all storage calls failing in every way S3 fails.
scenarioSuite("faults", "4 workers finish 200 tasks exactly once with 10% injected faults", {
  tasks: 200,
  workers: 4,
});

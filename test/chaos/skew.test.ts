import { scenarioSuite } from "./suite.ts";

// Worker clocks 5 minutes fast and 5 minutes slow; delayed tasks and tasks outliving their lease.
scenarioSuite("skew", "workers 5 minutes off neither start early nor steal live leases", {
  tasks: 60,
  workers: 4,
});

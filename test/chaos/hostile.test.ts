import { scenarioSuite } from "./suite.ts";

// Another client writes garbage under tasks/, ready/, leases/, schedules/ and workers/.
scenarioSuite("hostile", "workers report and skip garbage and still complete every valid task", {
  tasks: 100,
  workers: 4,
});

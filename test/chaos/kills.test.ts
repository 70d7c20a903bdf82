import { scenarioSuite } from "./suite.ts";

// Two workers SIGKILLed at random moments (in-process: their storage link cut) and replaced,
// three rounds, and a third one frozen for 2.5 leases each round, while 200 tasks of 0.1-0.9 s
// run: killed tasks come back after the 1 s lease; the frozen worker must not write them after.
scenarioSuite("kills", "no task is lost or completed twice when workers are killed or frozen", {
  tasks: 200,
  workers: 2,
  rounds: 3,
  leaseSeconds: 1,
  handlerMs: [100, 900],
});

import { scenarioSuite } from "./suite.ts";

// Two workers SIGKILLed at random moments (in-process: their storage link cut) and replaced,
// three rounds, while 200 tasks of 50-400 ms run: killed tasks come back after the 2 s lease.
scenarioSuite("kills", "no task is lost or completed twice when workers are killed mid-task", {
  tasks: 200,
  workers: 2,
  rounds: 3,
});

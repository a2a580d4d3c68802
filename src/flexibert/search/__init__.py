"""Stage 4: the GP surrogate, acquisitions, the ask/tell learner, the run store, backends, oracles,
measured tables, and the asynchronous search loop that wires them together."""

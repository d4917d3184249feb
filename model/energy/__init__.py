"""Energy, area and latency model (``docs/energy.md``): sourced constant tables, activity-based
accounting on the twins' operation counts, the TRNG figure of merit, the analog ODE solver against
a digital solver, and sensitivity sweeps."""

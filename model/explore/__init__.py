"""Design-space exploration as a pure library (``docs/explore.md``): study files
(:mod:`.study`), the grid and the NSGA-II search (:mod:`.space`), the resumable results table
(:mod:`.store`), non-dominated sorting and hypervolume (:mod:`.pareto`), analytic benchmarks
(:mod:`.benchmarks`). No Dask and no diffusion imports: ``sim/explore.py`` runs studies."""

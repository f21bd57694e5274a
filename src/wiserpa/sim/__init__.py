"""Policy simulator: a year of WISeR under each policy profile, through the real services.

Modules: `workload` (assumptions, population, arrivals), `participants` (reviewer pool), `engine` (event
loop over simulated time, one in-memory database per profile), `outputs` (table, CSV, charts, report,
stored runs), `views` (oversight pages), `models` (the `sim_runs` table). Nothing is imported here, so the
table registry can import `wiserpa.sim.models` without pulling in the engine. See docs/simulator.md.
"""

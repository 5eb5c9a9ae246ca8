"""Trace-driven placement benchmark: the FGD paper's simulator protocol on the Alibaba GPU trace.

Replays a workload of GPU-sharing pods onto the 1,213 GPU nodes of the Alibaba cluster, with no
departures, and measures GPU allocation as pods arrive. The modules, bottom up: `data` (CSV loading),
`workload` (pod types, target workload, seeded arrival order), `cluster` (free resources as arrays),
`frag` (the fragmentation metric), `policies` (random, bestfit, fgd, egs) and `simulate` (the loop and
the published allocation curve). `benchmarks/fgd.py` runs it against the paper's published means.
"""

"""A site's hard limits, shared by the config checks and the scoreboard that must hold them.

Every process of the site (worker, front, spawner or preloader) has a slot in the scoreboard, a
shared memory table the master creates once, before the first fork; each slot has one counter
column per group. So the table cannot grow while the site runs, and the config is checked
against it.
"""

MAX_GROUPS = 32  # groups over the site's life (a reload that adds groups uses new columns)
MAX_WORKERS = 1024  # worker processes of all groups together (an adaptive group: its max)
MAX_FRONTS = 64  # front.processes

# A reload runs the old and the new generation side by side, and a worker being recycled runs
# beside its replacement: twice everything, plus room for stragglers. Untouched slots cost
# address space only (2,624 bytes each).
MAX_SLOTS = 2 * (MAX_WORKERS + MAX_FRONTS + MAX_GROUPS) + 64

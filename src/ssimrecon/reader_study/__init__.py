"""A blinded reader study: a static HTML reading session of test-split reconstructions
(:mod:`.session`) and the statistics of the readers' exported answers (:mod:`.analysis`).

The page never holds a method name: trials have opaque ids, the reconstructions of a trial are
shown in a seeded, recorded order, and the mapping trial -> method per position lives only in the
key file (:mod:`.key`), which stays with the study's organiser.
"""

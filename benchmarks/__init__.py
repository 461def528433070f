"""Benchmarks of astromer_hf: ``python -m benchmarks`` runs the whole suite (see :mod:`benchmarks.suite` and
``docs/benchmarks.md``). The other modules are single studies run on their own:

* ``python -m benchmarks.prepare_memory``: peak memory and speed of preparing the synthetic survey;
* ``python -m benchmarks.simulator_baseline``: how separable the simulated classes are with classical features;
* ``python -m benchmarks.training_throughput``: data pipeline and training steps of the quickstart, A1 and A2 models.
"""

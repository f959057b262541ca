"""One module per DAG stage, each with ``run(inputs, cfg, model) -> StageResult``.

Pure functions: upstream ``xr.Dataset`` stores and the stage's config slice in, a dataset and report
texts out (only ``export`` reads a file: the model source). One module per stage, so a stage's
code digest (``stage_specs``) changes only when code it runs changes.
"""

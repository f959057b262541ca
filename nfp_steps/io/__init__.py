"""Model ingestion and export: HF folders, ``.nfpt`` text/binary, Zarr weight stores.

Entry points: :func:`nfp_steps.io.loader.load_model` and :func:`nfp_steps.io.loader.save_model`;
format modules ``hf``, ``nfpt_text`` (with the fast decimal parser ``decimal_text``),
``nfpt_binary`` and ``zarr_store``. Submodules are imported lazily (numpy/xarray/torch cost
seconds), so this package imports nothing.
"""

"""Methods: what ``evaluate``, ``predict`` and the viewer run on a batch of cloudy samples.

A *method* maps a batch to cloud-free predictions (:class:`~cloudfree.methods.base.Method`).
It is a non-learned baseline (:mod:`cloudfree.methods.baselines`), a trained network
(:class:`~cloudfree.methods.model.ModelMethod`), or the hybrid chain mask -> inpainting ->
network (:class:`~cloudfree.methods.hybrid.HybridMethod`); :func:`cloudfree.methods.load.load_method`
builds one from a name, a file, a checkpoint or a run folder::

    from cloudfree.methods.load import load_method

    method = load_method("mask-fill")                    # a baseline
    method = load_method("hybrid-nosar")                 # bundled weights, by name
    method = load_method("runs/paper-sar")               # a run folder: best/ or latest checkpoint
    pred = method.predict(batch)                         # (B, 13, H, W), network scale, CPU

The package sits below ``evaluate`` and ``predict``, which both run methods, and above
``models``, ``inpaint`` and ``weights``, which they are made of.
"""

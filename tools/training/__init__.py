"""Training run folders: ``runs`` writes one atomically (model, manifest, metrics, history, plots)
and publishes a run's model into ``models/pretrained``. Behind ``mnistkit train``.
"""

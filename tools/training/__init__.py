"""Training run folders: ``runs`` writes one atomically (model, manifest, metrics, history, plots)
and publishes a run's model into ``models/pretrained``; ``progress`` is the per-epoch progress bar and
``quiet`` keeps TensorFlow's native chatter off the terminal. Behind ``mnistkit train``.
"""

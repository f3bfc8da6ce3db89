"""``mnistkit serve``: the device as an app, a web page and a JSON API over one shared Classifier.

Needs the ``serve`` extra (Starlette, uvicorn, python-multipart): ``pip install "mnistkit[serve]"``.
Never imports TensorFlow. Modules:

- ``images``: reading and checking uploads (size, type, decompression bombs) without decoding them;
- ``api``: the classification and model-description handlers, JSON in and out;
- ``app``: the Starlette application (routes, error handlers, limits) and its static page;
- ``server``: binding the socket and running uvicorn (the click command is ``mnistkit.tools.cli.serve``);
- ``launch``: starting a server process and waiting for it (tests, load script); ``load``: the load script.
"""

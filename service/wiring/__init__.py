"""The composition root: every part of the running service built from the config.

``root`` assembles ``driftwatch run`` (:func:`service.wiring.root.build_service`);
``monitoring``, ``retraining``, ``watches``, ``jobs`` and ``api`` build its parts,
and the CLI's commands build the few they need from the same functions.
"""

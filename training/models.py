"""Training: rounds and the model registry arrive with the reward-model work (issue 4).

The app exists now so that settings, the Celery routing (``training.tasks.*`` →
the ``gpu`` queue) and the layout match DESIGN §2 from the start.
"""

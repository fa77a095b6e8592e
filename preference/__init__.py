"""Pure preference rules shared by ``annotation`` (export) and ``training`` (reward models).

No Django, no torch: ``annotation`` may not import ``training`` and the ML core may not import Django
(DESIGN §2), yet both must expand a judgment into pairs by the same rules. They live here, once.
"""

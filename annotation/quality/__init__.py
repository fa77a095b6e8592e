"""Label quality: agreement statistics, the annotator reliability model, flags and exclusions (issue 18).

``agreement`` and ``reliability`` are plain Python with no Django (like ``training.ml``): they take plain data and
return plain results. ``service`` reads judgments, calls them and stores the results; ``exclusions`` is the
researcher's reversible "do not train on this annotator" action.
"""

"""The checks of every notebook's exercises, one module per notebook (`nb00.py` ... `nb10.py`).

Each module registers its exercises with `course_utils.exercises.exercise`; the checks are
looked up by id ("01.2") when a notebook calls `cu.check_exercise`. Plumbing for the exercises.
"""

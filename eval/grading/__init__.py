"""Grading answers against gold ones in killable worker processes (see grader.py)."""

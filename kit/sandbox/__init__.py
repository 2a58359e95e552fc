"""The code sandbox: persistent, isolated Python sessions for model-written code (see pool.py)."""

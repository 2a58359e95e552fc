"""Serving Kaggle competitions: the predict function, the time bank, the local gateway and the offline bundle."""

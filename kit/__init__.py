"""Offline inference kit: SC-TIR (self-consistency over tool-integrated reasoning) on vLLM."""

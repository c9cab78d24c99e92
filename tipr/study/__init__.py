"""Benchmark studies on SynthPEDES: cached, resumable trainer runs, the start model, and the tables they write."""
